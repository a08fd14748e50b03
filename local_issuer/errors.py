"""Error bodies as Logto sends them.

OIDC endpoints (Logto's koa-oidc-error-handler over node-oidc-provider errors):
``{"code": "oidc.<error>", "message": <phrase>, "error": <error>, "error_description": ...}``.
The message is Logto's English phrase for the error (packages/phrases/.../errors/oidc.ts), or
its fallback ``An OIDC error occurred: oidc.<error>.`` for errors without one (invalid_client).

Management API (Logto's RequestError.toBody, Logto OSS v1.37.1):
``{"code": "<area>.<name>", "details"?: <text>, "message": <phrase>}``, the phrase being Logto's
English one (packages/phrases/src/locales/en/errors) with its values filled in.
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
    "guard.invalid_input": "The request {type} is invalid.",
    "guard.invalid_pagination": "The request pagination value is invalid.",
    # buildFindEntityByIdWithPool: an id in the path (or body) that names no row of that table.
    "entity.not_exists_with_id": "The {name} with ID `{id}` does not exist.",
    # koa-slonik-error-handler: a query that found no row (e.g. GET /api/users/{id}).
    "entity.not_found": "The resource does not exist.",
    "resource.resource_identifier_in_use": "The API identifier {indicator} is already in use",
    "scope.name_exists": "The scope name {name} is already in use",
    "scope.name_with_space": "The name of the scope cannot contain any spaces.",
    "role.name_in_use": "This role name {name} is already in use",
    "role.scope_exists": "The scope id {scopeId} has already been added to this role",
    "application.invalid_type": "Only machine to machine applications can have associated roles.",
    "application.invalid_role_type": "Can not assign user type role to machine to machine application.",
    "application.secret_name_exists": "Secret name already exists.",
    "user.username_already_in_use": "This username is already in use.",
    "user.email_already_in_use": "This email is associated with an existing account.",
    "request.general": "Request error occurred.",
    "request.invalid_input": "Input is invalid. {reason}",
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


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
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


def management_error(status: int, code: str, *, details: str | None = None, **values: str) -> Response:
    """A Management API error, fields in Logto's order: ``code``, ``details`` (when any), ``message``."""
    body: dict[str, Any] = {"code": code}
    if details:
        body["details"] = details
    body["message"] = MANAGEMENT_PHRASES[code].format(**values)
    return json_response(status, body)


def internal_server_error() -> Response:
    """Logto's answer to an unexpected exception (koa-error-handler): no code, no internals."""
    return json_response(500, {"message": "Internal server error."})
