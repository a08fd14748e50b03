"""Roles and their scopes (Logto: packages/core/src/routes/role.ts, role.scope.ts)."""

from __future__ import annotations

from typing import Any, Literal

from flask import Response, request
from pydantic import Field

from ..errors import json_response, management_error
from ..tenant import RoleRecord, new_id
from . import bp
from .requests import Body, paginated, parse_body, read_page
from .resources import SCOPE_FIELDS
from .search import search_filter
from .state import tenant

#: The fields a role search looks at (Logto's roles search fields).
ROLE_FIELDS = ("id", "name", "description")


class CreateRole(Body):
    name: str = Field(min_length=1, max_length=128)
    description: str = Field(min_length=1, max_length=128)  # required by Logto
    type: Literal["User", "MachineToMachine"] = "User"  # Logto's default is a user role
    scopeIds: list[str] | None = None


class UpdateRole(Body):
    name: str | None = Field(default=None, min_length=1, max_length=128)
    description: str | None = Field(default=None, min_length=1, max_length=128)


class AddScopes(Body):
    scopeIds: list[str] = Field(min_length=1)


def role_not_found(role_id: str) -> Response:
    return management_error(404, "entity.not_exists_with_id", name="roles", id=role_id)


def scope_not_found(scope_id: str) -> Response:
    return management_error(404, "entity.not_exists_with_id", name="scopes", id=scope_id)


def _listed(role: RoleRecord) -> dict[str, Any]:
    """A role as ``GET /api/roles`` lists it: with counts and up to three featured apps."""
    state = tenant()
    apps = [a for a in state.applications.values() if role.id in a.role_ids]
    return {
        **role.body(),
        "usersCount": 0,
        "featuredUsers": [],
        "applicationsCount": len(apps),
        "featuredApplications": [{"id": a.id, "name": a.name, "type": a.type} for a in apps[:3]],
    }


@bp.get("/roles")
def list_roles() -> Response:
    page = read_page(optional=False)
    wanted_type = request.args.get("type")
    found = search_filter(ROLE_FIELDS)
    state = tenant()
    with state.lock:
        items = [
            _listed(r) for r in state.roles.values() if wanted_type in (None, r.type) and found(r.body())
        ]
    return paginated(items, page)


@bp.post("/roles")
def create_role() -> Response:
    body = parse_body(CreateRole)
    state = tenant()
    with state.lock:
        if state.role_by_name(body.name) is not None:
            return management_error(422, "role.name_in_use", name=body.name)
        scope_ids = list(dict.fromkeys(body.scopeIds or []))
        if missing := next((s for s in scope_ids if s not in state.scopes), None):
            return scope_not_found(missing)
        role = RoleRecord(new_id(), body.name, body.description, body.type, scope_ids)
        state.roles[role.id] = role
        state.save()
        return json_response(200, role.body())


@bp.get("/roles/<role_id>")
def get_role(role_id: str) -> Response:
    state = tenant()
    with state.lock:
        role = state.roles.get(role_id)
        return json_response(200, role.body()) if role else role_not_found(role_id)


@bp.patch("/roles/<role_id>")
def update_role(role_id: str) -> Response:
    body = parse_body(UpdateRole)
    state = tenant()
    with state.lock:
        role = state.roles.get(role_id)
        if role is None:
            return role_not_found(role_id)
        if body.name is not None:
            other = state.role_by_name(body.name)
            if other is not None and other.id != role_id:
                return management_error(422, "role.name_in_use", name=body.name)
            role.name = body.name
        if body.description is not None:
            role.description = body.description
        state.save()
        return json_response(200, role.body())


@bp.get("/roles/<role_id>/scopes")
def list_role_scopes(role_id: str) -> Response:
    page = read_page(optional=True)
    state = tenant()
    with state.lock:
        role = state.roles.get(role_id)
        if role is None:
            return role_not_found(role_id)
        found = search_filter(SCOPE_FIELDS)
        items = []
        for scope_id in role.scope_ids:
            scope = state.scopes[scope_id]
            if found(scope.body()):
                items.append({**scope.body(), "resource": state.resources[scope.resource_id].body()})
    return paginated(items, page)


@bp.post("/roles/<role_id>/scopes")
def add_role_scopes(role_id: str) -> Response:
    body = parse_body(AddScopes)
    state = tenant()
    with state.lock:
        role = state.roles.get(role_id)
        if role is None:
            return role_not_found(role_id)
        if held := next((s for s in body.scopeIds if s in role.scope_ids), None):
            return management_error(422, "role.scope_exists", scopeId=held)
        if missing := next((s for s in body.scopeIds if s not in state.scopes), None):
            return scope_not_found(missing)
        role.scope_ids.extend(dict.fromkeys(body.scopeIds))
        state.save()
        return json_response(200, [state.scopes[s].body() for s in role.scope_ids])
