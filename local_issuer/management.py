"""The Management API subset the stats worker uses, under ``{endpoint}/api``.

Guarded like Logto's (packages/core/src/middleware/koa-auth): a Bearer access token from this
issuer for the Management API indicator, verified here with our own keys, holding scope ``all``.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ParamSpec

from flask import Blueprint, Response, current_app, g, request

from logto_m2m.logto import MANAGEMENT_API_SCOPE, OSS_MANAGEMENT_API_RESOURCE

from .errors import json_response, management_error
from .tokens import InvalidAccessToken, verify_access_token

if TYPE_CHECKING:
    from .users import UserStore

P = ParamSpec("P")

log = logging.getLogger(__name__)

bp = Blueprint("management", __name__, url_prefix="/api")

MAX_BODY_BYTES = 1024 * 1024


def require_management_token(view: Callable[P, Response]) -> Callable[P, Response]:
    """Answer 401/403 as Logto does unless the request carries a Management API token with ``all``."""

    @functools.wraps(view)
    def wrapped(*args: P.args, **kwargs: P.kwargs) -> Response:
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
        return view(*args, **kwargs)

    return wrapped


def _known_user(user_id: str) -> tuple[UserStore, Response | None]:
    users: UserStore = current_app.extensions["local_issuer"].users
    if not users.exists(user_id):
        return users, management_error(404, "entity.not_exists_with_id", name="users", id=user_id)
    return users, None


@bp.get("/users/<user_id>")
@require_management_token
def get_user(user_id: str) -> Response:
    users, error = _known_user(user_id)
    return error or json_response(200, users.profile(user_id))


@bp.get("/users/<user_id>/custom-data")
@require_management_token
def get_custom_data(user_id: str) -> Response:
    users, error = _known_user(user_id)
    return error or json_response(200, users.custom_data(user_id))


@bp.patch("/users/<user_id>/custom-data")
@require_management_token
def patch_custom_data(user_id: str) -> Response:
    users, error = _known_user(user_id)
    if error:
        return error
    changes = _custom_data_body()
    if changes is None:
        return management_error(400, "guard.invalid_input")
    merged = users.merge_custom_data(user_id, changes)
    log.info(
        "custom data of %s updated by %s (keys: %s)",
        user_id,
        g.management_client_id,
        ", ".join(sorted(changes)) or "none",
    )
    return json_response(200, merged)


def _custom_data_body() -> dict[str, Any] | None:
    """``customData`` of a ``{"customData": {...}}`` JSON body, or None when the body is not that."""
    if request.mimetype != "application/json":
        return None
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        return None
    raw = request.stream.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        return None
    try:
        body = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant, parse_float=_finite_float)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(body, dict) or set(body) != {"customData"} or not isinstance(body["customData"], dict):
        return None
    if _depth(body) > MAX_DEPTH:
        return None
    return body["customData"]


#: How deeply custom data may nest; far more than any real profile, far less than Python's stack.
MAX_DEPTH = 64


def _reject_constant(name: str) -> None:
    # NaN and Infinity are not JSON (RFC 8259 section 6): storing them would corrupt users.json.
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):  # 1e999 overflows to inf: as unstorable as Infinity itself
        raise ValueError("number out of range")
    return number


def _depth(value: object) -> int:
    """Nesting depth of a JSON value, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((child, level + 1) for child in children)
    return deepest
