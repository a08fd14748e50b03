"""Health: ``GET /healthz`` (the process and its database answer) and ``GET /readyz`` (it can serve).

A container runtime restarts what fails liveness, and sends traffic only to what passes
readiness: an API whose tables were never created, or that has no signing key yet, is alive
(restarting it would not help) but not ready.
"""

from __future__ import annotations

import logging

from flask import Blueprint, current_app
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import SQLAlchemyError

from .db import SCHEMA_MISSING, get_engine, ping, schema_present
from .errors import error_response
from .schemas import Health, Ready
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


@bp.get("/readyz")
@operation(
    "Can the API serve requests: database reachable, its tables created, signing keys loaded? "
    "(no token needed)",
    response=Ready,
    errors=(503,),
)
def readyz() -> ResponseReturnValue:
    problems: list[str] = []
    try:
        if not schema_present(get_engine()):
            problems.append(SCHEMA_MISSING)
    except SQLAlchemyError as exc:
        log.warning("readiness check: database unavailable (%s)", type(exc).__name__)
        problems.append("the database does not answer")
    if not current_app.extensions["token_validator"].keys.ready():
        problems.append("no signing key loaded yet from the issuer's JWKS")
    if problems:
        return error_response(503, "not_ready", "; ".join(problems), headers={"Retry-After": "5"})
    return {"status": "ready"}
