"""Error bodies as Logto sends them.

OIDC endpoints (Logto's koa-oidc-error-handler over node-oidc-provider errors):
``{"code": "oidc.<error>", "message": <phrase>, "error": <error>, "error_description": ...}``.
The message is Logto's English phrase for the error (packages/phrases/.../errors/oidc.ts), or
its fallback ``An OIDC error occurred: oidc.<error>.`` for errors without one (invalid_client).

Management API (Logto's RequestError): ``{"code": "<area>.<name>", "message": <phrase>}``.
"""

from __future__ import annotations

import re
from typing import Any

from authlib.oauth2 import OAuth2Error
from flask import Response, json

JSON_TYPE = "application/json; charset=utf-8"

OIDC_PHRASES = {
    "invalid_request": "Request is invalid.",
    "invalid_grant": "Grant request is invalid.",
    "invalid_target": "Invalid resource indicator.",
    "invalid_token": "Invalid token provided.",
    "unsupported_grant_type": "Unsupported `grant_type` requested.",
    "access_denied": "Access denied.",
    "server_error": "An unknown OIDC error occurred. Please try again later.",
}

MANAGEMENT_PHRASES = {
    "auth.authorization_header_missing": "Authorization header is missing.",
    "auth.authorization_token_type_not_supported": "Authorization type is not supported.",
    "auth.unauthorized": "Unauthorized. Please check credentials and its scope.",
    "auth.forbidden": "Forbidden. Please check your user roles and permissions.",
    "guard.invalid_input": "The request input is invalid.",
    "entity.not_exists_with_id": "The {name} with ID `{id}` does not exist.",
    "entity.not_found": "The resource does not exist.",
    "request.general": "Request error occurred.",
    "unknown": "Unknown error occurred.",
}

# RFC 6749 section 5.2: error_description is limited to %x20-21 / %x23-5B / %x5D-7E.
_NOT_ALLOWED_IN_DESCRIPTION = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")


def safe_description(text: str, limit: int = 200) -> str:
    """Make caller-supplied text (e.g. an unknown client id) fit an error_description."""
    cleaned = _NOT_ALLOWED_IN_DESCRIPTION.sub("?", text)
    return cleaned if len(cleaned) <= limit else cleaned[:limit] + "..."


class InvalidTargetError(OAuth2Error):
    """RFC 8707 section 2: the resource indicator is missing, unknown or not allowed."""

    error = "invalid_target"


def json_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    response = Response(json.dumps(body), status=status, content_type=JSON_TYPE)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def oidc_error_body(error: str, description: str | None) -> dict[str, Any]:
    body = {
        "code": f"oidc.{error}",
        "message": OIDC_PHRASES.get(error, f"An OIDC error occurred: oidc.{error}."),
        "error": error,
    }
    if description:
        body["error_description"] = description
    return body


def oidc_error_response(
    status: int, error: str, description: str | None, headers: dict[str, str] | None = None
) -> Response:
    """An OIDC endpoint error; never cached (RFC 6749 section 5.1 asks the same of successes)."""
    return json_response(
        status, oidc_error_body(error, description), {"Cache-Control": "no-store", **(headers or {})}
    )


def management_error(status: int, code: str, **values: str) -> Response:
    """A Management API error: ``{"code": ..., "message": ...}``."""
    return json_response(status, {"code": code, "message": MANAGEMENT_PHRASES[code].format(**values)})
