"""Liveness: ``GET /healthz`` answers ``{"status": "ok"}`` when the database answers too."""

from __future__ import annotations

import logging

from flask import Blueprint
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import SQLAlchemyError

from .db import ping
from .errors import error_response
from .schemas import Health
from .validation import operation

log = logging.getLogger(__name__)

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@operation("Is the API up and its database reachable? (no token needed)", response=Health, errors=(503,))
def healthz() -> ResponseReturnValue:
    try:
        ping()
    except SQLAlchemyError as exc:
        # The exception's class is enough for operators; its text may carry connection details.
        log.warning("health check: database unavailable (%s)", type(exc).__name__)
        return error_response(503, "temporarily_unavailable", "the database does not answer")
    return {"status": "ok"}
