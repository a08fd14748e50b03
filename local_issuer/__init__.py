"""A local, Logto-compatible authorization server for offline runs and tests (not for production).

``create_app`` builds the Flask app (flaskr style); ``local-issuer`` (``cli.py``) serves it with
gunicorn. What it issues and how it answers follow Logto: see ``oauth.py`` and ``tokens.py``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask, Response, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException

from logto_m2m.logto import issuer_for

from .config import IssuerConfig, load_config
from .errors import internal_server_error, management_error, oidc_error_response
from .keys import SigningKeys
from .logsafe import loggable
from .management.requests import MAX_BODY_BYTES
from .oauth import LocalAuthorizationServer
from .tenant import STATE_FILE_NAME, Tenant
from .users import UserStore

log = logging.getLogger(__name__)

DEFAULT_STATE_DIR = ".local-issuer"
KEY_FILE_NAME = "signing-keys.json"
USERS_FILE_NAME = "users.json"


class LogtoOrderJSON(DefaultJSONProvider):
    sort_keys = False  # keep Logto's field order in bodies


@dataclass
class LocalIssuer:
    """Everything one running issuer holds: its tenant, keys, user data and token endpoint."""

    issuer: str
    config: IssuerConfig
    tenant: Tenant
    keys: SigningKeys
    users: UserStore
    oauth: LocalAuthorizationServer


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the issuer app.

    Settings (keys of ``test_config``): ``ISSUER_ENDPOINT`` (public base URL, ``iss`` is
    ``{endpoint}/oidc``), ``ISSUER_CONFIG_FILE`` (None: the packaged demo config),
    ``ISSUER_STATE_DIR``, ``ISSUER_KEY_FILE`` (default ``{state dir}/signing-keys.json``),
    ``ISSUER_ROTATE_KEY``. Raises ``ConfigError``/``KeyFileError``/``UserStoreError``/
    ``TenantStateError`` on bad input.
    """
    app = Flask(__name__, static_folder=None)  # JSON only
    app.config.from_mapping(
        ISSUER_ENDPOINT="http://127.0.0.1:3001",
        ISSUER_CONFIG_FILE=None,
        ISSUER_STATE_DIR=DEFAULT_STATE_DIR,
        ISSUER_KEY_FILE=None,
        ISSUER_ROTATE_KEY=False,
        # One byte over the Management API's limit: werkzeug stops a chunked body at this size
        # without an error, so the readers must be able to see that there was more.
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES + 1,
    )
    app.config.from_mapping(test_config or {})
    app.json = LogtoOrderJSON(app)

    config_file = app.config["ISSUER_CONFIG_FILE"]
    config = load_config(Path(config_file) if config_file else None)
    state_dir = Path(app.config["ISSUER_STATE_DIR"])
    key_file = Path(app.config["ISSUER_KEY_FILE"] or state_dir / KEY_FILE_NAME)
    keys = SigningKeys.load_or_create(key_file, rotate=bool(app.config["ISSUER_ROTATE_KEY"]))
    issuer = issuer_for(app.config["ISSUER_ENDPOINT"])
    tenant = Tenant(config, state_dir / STATE_FILE_NAME)
    app.extensions["local_issuer"] = LocalIssuer(
        issuer=issuer,
        config=config,
        tenant=tenant,
        keys=keys,
        users=UserStore(state_dir / USERS_FILE_NAME, config.users),
        oauth=LocalAuthorizationServer(tenant, keys, issuer),
    )

    from . import management, oidc

    app.register_blueprint(oidc.bp)
    app.register_blueprint(management.bp)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)
    return app


def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    if request.path.startswith("/oidc/"):
        # node-oidc-provider's answer for any route or method it does not serve.
        description = f"unrecognized route or not allowed method ({request.method} on {request.path})"
        return oidc_error_response(
            404 if status in (404, 405) else status,
            "invalid_request",
            description if status in (404, 405) else exc.name.lower(),
        )
    if status == 404:
        return management_error(404, "entity.not_found")
    response = management_error(status, "request.general")
    return response


def _unexpected_error(exc: Exception) -> Response:
    # The trace is for the operator's log; the client gets Logto's generic answer, no internals.
    log.exception("unhandled error on %s %s", request.method, loggable(request.path))
    return internal_server_error()
