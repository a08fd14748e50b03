"""Users (Logto: packages/core/src/routes/admin-user): the profile, custom data, list and create.

An unknown user id is Logto's 404 ``entity.not_found`` ("The resource does not exist."): its user
queries use slonik's ``one``, whose NotFoundError koa-slonik-error-handler turns into that code.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Response, g
from pydantic import Field

from ..config import User
from ..errors import json_response, management_error
from ..logsafe import loggable
from ..tenant import new_id
from . import bp
from .requests import Body, invalid_body, paginated, parse_body, read_json_body, read_page
from .search import search_filter
from .state import users

log = logging.getLogger(__name__)


class CreateUser(Body):
    username: str | None = Field(default=None, min_length=1, max_length=128)
    primaryEmail: str | None = Field(default=None, min_length=3, max_length=128)
    name: str | None = Field(default=None, max_length=128)
    customData: dict[str, Any] = Field(default_factory=dict)


def user_not_found() -> Response:
    return management_error(404, "entity.not_found")


@bp.get("/users")
def list_users() -> Response:
    page = read_page(optional=False)
    found = search_filter(("id", "primary_email", "primary_phone", "username", "name"))
    store = users()
    profiles = [store.profile(user_id) for user_id in store.ids()]
    return paginated([p for p in profiles if found(p)], page)


@bp.post("/users")
def create_user() -> Response:
    body = parse_body(CreateUser)
    store = users()
    user = User.model_validate(
        {
            "id": new_id()[:12],  # Logto's user ids are 12 characters
            "username": body.username,
            "primaryEmail": body.primaryEmail,
            "name": body.name,
            "customData": body.customData,
        }
    )
    if conflict := store.create(user):
        return management_error(422, conflict)
    return json_response(200, store.profile(user.id))


@bp.get("/users/<user_id>")
def get_user(user_id: str) -> Response:
    store = users()
    return json_response(200, store.profile(user_id)) if store.exists(user_id) else user_not_found()


@bp.get("/users/<user_id>/custom-data")
def get_custom_data(user_id: str) -> Response:
    store = users()
    return json_response(200, store.custom_data(user_id)) if store.exists(user_id) else user_not_found()


@bp.patch("/users/<user_id>/custom-data")
def patch_custom_data(user_id: str) -> Response:
    store = users()
    if not store.exists(user_id):
        return user_not_found()
    body = read_json_body()
    if not isinstance(body, dict) or set(body) != {"customData"} or not isinstance(body["customData"], dict):
        raise invalid_body('Error in key path "customData": (invalid_type) Expected object.')
    changes = body["customData"]
    merged = store.merge_custom_data(user_id, changes)
    log.info(
        "custom data of %s updated by %s (keys: %s)",
        user_id,
        g.management_client_id,
        loggable(", ".join(sorted(changes)) or "none"),
    )
    return json_response(200, merged)
