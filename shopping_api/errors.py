"""The one JSON error shape of the API, and handlers so that nothing answers with HTML or a trace."""

from __future__ import annotations

import logging

from flask import Flask, jsonify
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

log = logging.getLogger(__name__)


def error_response(
    status: int,
    error: str,
    description: str,
    *,
    fields: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """Build ``{"error": ..., "error_description": ...[, "fields": {...}]}`` with ``status``."""
    body: dict[str, object] = {"error": error, "error_description": description}
    if fields:
        body["fields"] = fields
    response = jsonify(body)
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _http_error(exc: HTTPException) -> ResponseReturnValue:
    if exc.response is not None:  # abort(response): the response is already the answer
        return exc.response
    code = exc.code or 500
    name = (exc.name or "error").lower().replace(" ", "_")
    headers = {}
    if code == 405 and exc.get_response().headers.get("Allow"):
        headers["Allow"] = exc.get_response().headers["Allow"]
    return error_response(code, name, exc.description or exc.name, headers=headers)


def server_error(exc: Exception) -> Response:
    # Log the trace for operators; the client gets a fixed message, never internals.
    log.exception("unhandled error")
    return error_response(500, "server_error", "the server could not complete the request")


def init_app(app: Flask) -> None:
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, server_error)
