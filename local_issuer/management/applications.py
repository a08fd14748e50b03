"""Applications, their roles and secrets (Logto: packages/core/src/routes/applications/
application.ts, application-role.ts, application-secret.ts).

A new app gets Logto's two secrets: the legacy ``#internal:...`` one on the application row and a
``Default secret`` in ``GET /api/applications/{id}/secrets``. Both authenticate at the token
endpoint with ``client_secret_basic`` or ``client_secret_post``, as on Logto OSS v1.37.1.
"""

from __future__ import annotations

from typing import Annotated, Literal

from flask import Response, request
from pydantic import Field

from ..errors import json_response, management_error
from ..tenant import (
    DEFAULT_SECRET_NAME,
    INTERNAL_PREFIX,
    M2M,
    ApplicationRecord,
    SecretRecord,
    new_id,
    new_secret,
    now_ms,
)
from . import bp
from .requests import Body, paginated, parse_body, read_page
from .roles import ROLE_FIELDS, role_not_found
from .search import search_filter
from .state import tenant

#: The application types this issuer can hold (Logto's, less Protected and SAML apps).
AppType = Literal["Native", "SPA", "Traditional", "MachineToMachine"]


class CreateApplication(Body):
    name: str = Field(min_length=1, max_length=256)
    type: AppType
    description: str | None = Field(default=None, max_length=2048)


class AssignRoles(Body):
    roleIds: list[Annotated[str, Field(min_length=1)]]


class CreateSecret(Body):
    name: str = Field(min_length=1, max_length=256)
    expiresAt: int | None = None


def app_not_found(app_id: str) -> Response:
    return management_error(404, "entity.not_exists_with_id", name="applications", id=app_id)


@bp.get("/applications")
def list_applications() -> Response:
    page = read_page(optional=True)
    types = set(request.args.getlist("types"))
    found = search_filter(("id", "name", "description"))
    state = tenant()
    with state.lock:
        items = [
            a.body()
            for a in state.applications.values()
            if (not types or a.type in types) and found(a.body())
        ]
    return paginated(items, page)


@bp.post("/applications")
def create_application() -> Response:
    body = parse_body(CreateApplication)
    state = tenant()
    with state.lock:
        created = now_ms()
        app = ApplicationRecord(
            id=new_id(),
            name=body.name,
            type=body.type,
            secret=INTERNAL_PREFIX + new_secret(),
            description=body.description,
            created_at=created,
            secrets=[SecretRecord(DEFAULT_SECRET_NAME, new_secret(), created)],
        )
        state.applications[app.id] = app
        state.save()
        return json_response(200, app.body())  # 200, not 201: Logto's status for this route


@bp.get("/applications/<app_id>")
def get_application(app_id: str) -> Response:
    state = tenant()
    with state.lock:
        app = state.applications.get(app_id)
        if app is None:
            return app_not_found(app_id)
        return json_response(200, {**app.body(), "isAdmin": False})


def _m2m_app(app_id: str) -> ApplicationRecord | Response:
    app = tenant().applications.get(app_id)
    if app is None:
        return app_not_found(app_id)
    if app.type != M2M:
        return management_error(422, "application.invalid_type")
    return app


@bp.get("/applications/<app_id>/roles")
def list_application_roles(app_id: str) -> Response:
    page = read_page(optional=False)
    state = tenant()
    with state.lock:
        app = _m2m_app(app_id)
        if isinstance(app, Response):
            return app
        found = search_filter(ROLE_FIELDS)
        roles = [state.roles[r].body() for r in app.role_ids if state.roles[r].type == M2M]
        items = [role for role in roles if found(role)]
    return paginated(items, page)


@bp.post("/applications/<app_id>/roles")
def assign_application_roles(app_id: str) -> Response:
    body = parse_body(AssignRoles)
    state = tenant()
    with state.lock:
        app = _m2m_app(app_id)
        if isinstance(app, Response):
            return app
        to_add = [r for r in dict.fromkeys(body.roleIds) if r not in app.role_ids]  # held ones: ignored
        for role_id in to_add:
            role = state.roles.get(role_id)
            if role is not None and role.type != M2M:
                return management_error(422, "application.invalid_role_type")
        if missing := next((r for r in to_add if r not in state.roles), None):
            return role_not_found(missing)
        app.role_ids.extend(to_add)
        state.save()
        return json_response(201, {"roleIds": body.roleIds, "addedRoleIds": to_add})


@bp.get("/applications/<app_id>/secrets")
def list_application_secrets(app_id: str) -> Response:
    state = tenant()
    with state.lock:
        app = state.applications.get(app_id)
        if app is None:
            return app_not_found(app_id)
        return json_response(200, [app.secret_body(s) for s in app.secrets])


@bp.post("/applications/<app_id>/secrets")
def create_application_secret(app_id: str) -> Response:
    body = parse_body(CreateSecret)
    if body.expiresAt is not None and body.expiresAt <= now_ms():
        return management_error(
            400, "request.invalid_input", reason="The value of `expiresAt` must be in the future."
        )
    state = tenant()
    with state.lock:
        app = state.applications.get(app_id)
        if app is None:
            return app_not_found(app_id)
        if any(s.name == body.name for s in app.secrets):
            return management_error(422, "application.secret_name_exists")
        record = SecretRecord(body.name, new_secret(), now_ms(), body.expiresAt)
        app.secrets.append(record)
        state.save()
        return json_response(201, app.secret_body(record))
