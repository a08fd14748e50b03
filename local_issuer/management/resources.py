"""API resources and their scopes (Logto: packages/core/src/routes/resource.ts, resource.scope.ts)."""

from __future__ import annotations

from flask import Response, request
from pydantic import Field

from ..errors import json_response, management_error
from ..tenant import ResourceRecord, ScopeRecord, new_id, now_ms
from . import bp
from .requests import Body, paginated, parse_body, read_page
from .search import search_filter
from .state import tenant

#: The fields a scope search looks at (Logto's scopes search fields).
SCOPE_FIELDS = ("id", "name", "description")


class CreateResource(Body):
    name: str = Field(min_length=1, max_length=128)
    indicator: str = Field(min_length=1, max_length=2048)
    accessTokenTtl: int = Field(default=3600, ge=1, le=2**31 - 1)


class UpdateResource(Body):
    name: str | None = Field(default=None, min_length=1, max_length=128)
    accessTokenTtl: int | None = Field(default=None, ge=1, le=2**31 - 1)


class CreateScope(Body):
    name: str = Field(min_length=1, max_length=256)
    description: str | None = Field(default=None, max_length=2048)


class UpdateScope(Body):
    name: str | None = Field(default=None, min_length=1, max_length=256)
    description: str | None = Field(default=None, max_length=2048)


def resource_not_found(resource_id: str) -> Response:
    return management_error(404, "entity.not_exists_with_id", name="resources", id=resource_id)


def _with_scopes(resource: ResourceRecord) -> dict[str, object]:
    return {**resource.body(), "scopes": [s.body() for s in tenant().scopes_of_resource(resource.id)]}


@bp.get("/resources")
def list_resources() -> Response:
    page = read_page(optional=True)
    state = tenant()
    with state.lock:
        include_scopes = request.args.get("includeScopes", "").lower() in ("true", "1", "yes", "y")
        items = [_with_scopes(r) if include_scopes else r.body() for r in state.resources.values()]
    return paginated(items, page)


@bp.post("/resources")
def create_resource() -> Response:
    body = parse_body(CreateResource)
    state = tenant()
    with state.lock:
        if state.resource_by_indicator(body.indicator) is not None:
            return management_error(422, "resource.resource_identifier_in_use", indicator=body.indicator)
        resource = ResourceRecord(new_id(), body.name, body.indicator, body.accessTokenTtl)
        state.resources[resource.id] = resource
        state.save()
        return json_response(201, {**resource.body(), "scopes": []})


@bp.get("/resources/<resource_id>")
def get_resource(resource_id: str) -> Response:
    state = tenant()
    with state.lock:
        resource = state.resources.get(resource_id)
        return json_response(200, resource.body()) if resource else resource_not_found(resource_id)


@bp.patch("/resources/<resource_id>")
def update_resource(resource_id: str) -> Response:
    body = parse_body(UpdateResource)
    state = tenant()
    with state.lock:
        resource = state.resources.get(resource_id)
        if resource is None:
            return resource_not_found(resource_id)
        if body.name is not None:
            resource.name = body.name
        if body.accessTokenTtl is not None:
            resource.access_token_ttl = body.accessTokenTtl
        state.save()
        return json_response(200, resource.body())


@bp.get("/resources/<resource_id>/scopes")
def list_scopes(resource_id: str) -> Response:
    page = read_page(optional=False)  # always paginated in Logto
    found = search_filter(SCOPE_FIELDS)
    state = tenant()
    with state.lock:
        items = [s.body() for s in state.scopes_of_resource(resource_id) if found(s.body())]
    return paginated(items, page)


@bp.post("/resources/<resource_id>/scopes")
def create_scope(resource_id: str) -> Response:
    body = parse_body(CreateScope)
    if any(ch.isspace() for ch in body.name):
        return management_error(400, "scope.name_with_space")
    state = tenant()
    with state.lock:
        if resource_id not in state.resources:
            return resource_not_found(resource_id)
        if any(s.name == body.name for s in state.scopes_of_resource(resource_id)):
            return management_error(422, "scope.name_exists", name=body.name)
        scope = ScopeRecord(new_id(), resource_id, body.name, body.description, now_ms())
        state.scopes[scope.id] = scope
        state.save()
        return json_response(201, scope.body())


@bp.patch("/resources/<resource_id>/scopes/<scope_id>")
def update_scope(resource_id: str, scope_id: str) -> Response:
    body = parse_body(UpdateScope)
    state = tenant()
    with state.lock:
        if resource_id not in state.resources:
            return resource_not_found(resource_id)
        scope = state.scopes.get(scope_id)
        if scope is None or scope.resource_id != resource_id:
            return management_error(404, "entity.not_exists_with_id", name="scopes", id=scope_id)
        if body.name is not None:
            if any(ch.isspace() for ch in body.name):
                return management_error(400, "scope.name_with_space")
            if any(s.name == body.name and s.id != scope_id for s in state.scopes_of_resource(resource_id)):
                return management_error(422, "scope.name_exists", name=body.name)
            scope.name = body.name
        if "description" in body.model_fields_set:
            scope.description = body.description
        state.save()
        return json_response(200, scope.body())
