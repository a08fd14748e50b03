"""The Management API under ``{endpoint}/api``: the routes the stats worker and the provisioner call.

Guarded like Logto's (packages/core/src/middleware/koa-auth): a Bearer access token from this
issuer for the Management API indicator, verified here with our own keys, holding scope ``all``.
Shapes, status codes and error bodies are Logto OSS v1.37.1's (recorded in tests/logto_captures and
read from logto-io/logto packages/core/src/routes).
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, g, request

from logto_m2m.logto import MANAGEMENT_API_SCOPE, OSS_MANAGEMENT_API_RESOURCE

from ..errors import management_error
from ..tokens import InvalidAccessToken, verify_access_token
from .requests import RequestProblem

log = logging.getLogger(__name__)

bp = Blueprint("management", __name__, url_prefix="/api")


@bp.before_request
def require_management_token() -> Response | None:
    """Answer 401/403 as Logto does unless the request carries a Management API token with ``all``."""
    issuer = current_app.extensions["local_issuer"]
    header = request.headers.get("Authorization")
    if not header:
        return management_error(401, "auth.authorization_header_missing")
    scheme, _, token = header.partition(" ")
    if scheme != "Bearer":
        return management_error(401, "auth.authorization_token_type_not_supported")
    try:
        claims = verify_access_token(
            issuer.keys, token.strip(), issuer=issuer.issuer, audience=OSS_MANAGEMENT_API_RESOURCE
        )
    except InvalidAccessToken as exc:
        log.info("management API: token rejected (%s)", exc)
        return management_error(401, "auth.unauthorized")
    scope = claims.get("scope")
    if not isinstance(scope, str) or MANAGEMENT_API_SCOPE not in scope.split(" "):
        return management_error(403, "auth.forbidden")
    g.management_client_id = claims.get("client_id")
    return None


@bp.errorhandler(RequestProblem)
def _problem(problem: RequestProblem) -> Response:
    return problem.response


from . import applications, resources, roles, users  # noqa: E402 -- registers the routes on bp

__all__ = ["applications", "bp", "resources", "roles", "users"]
