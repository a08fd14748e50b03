"""The running issuer's tenant and user store, for the routes."""

from __future__ import annotations

from flask import current_app

from ..tenant import Tenant
from ..users import UserStore


def tenant() -> Tenant:
    return current_app.extensions["local_issuer"].tenant  # type: ignore[no-any-return]


def users() -> UserStore:
    return current_app.extensions["local_issuer"].users  # type: ignore[no-any-return]
