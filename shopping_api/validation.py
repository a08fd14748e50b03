"""Checking path values, query strings and JSON bodies against the models in ``schemas``.

``@operation(...)`` sits under ``@require_oauth`` (so a caller without a token learns nothing about
the input rules), validates what the route declares, and hands the view parsed models. The same
declaration feeds /openapi.json, so the document cannot drift from what is enforced.

Bad path or query values answer 400, a body that is not JSON 400, a body of the wrong media type
415, a JSON body that breaks the rules 422; each names every bad field in ``fields``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

from flask import Flask, abort, request
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import RequestEntityTooLarge

from .errors import error_response
from .schemas import Body, Query

#: Bodies are small (an order of 100 lines is a few KiB); anything larger is refused with 413.
MAX_CONTENT_LENGTH = 64 * 1024
#: A Flask view function (what ``operation`` wraps and returns).
View = Callable[..., ResponseReturnValue]
JSON_TYPES = ("application/json", "application/merge-patch+json")

_MESSAGES = {
    "missing": "is required",
    "extra_forbidden": "is not a known field",
}


@dataclass(frozen=True)
class Operation:
    """What a route takes and answers: enforced by ``operation``, published by /openapi.json."""

    summary: str
    scope: str | None = None
    path: type[Query] | None = None
    query: type[Query] | None = None
    body: type[Body] | None = None
    status: int = 200
    response: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()
    headers: dict[str, str] = field(default_factory=dict)
    description: str = ""
    #: ``If-Match`` on a write: "required" (428 without it) or "optional"; 412 when it is stale.
    #: The view compares it with the row's version, so it is declared here and checked there.
    if_match: str | None = None


def field_errors(exc: ValidationError, root: str) -> dict[str, str]:
    """Map pydantic's report to ``{"items.0.quantity": "message"}`` (never echoing the input)."""
    fields: dict[str, str] = {}
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        name = ".".join(str(part) for part in error["loc"]) or root
        message = _MESSAGES.get(error["type"], error["msg"].removeprefix("Value error, "))
        fields.setdefault(name, message)
    return fields


def invalid(status: int, error: str, description: str, fields: dict[str, str] | None = None) -> NoReturn:
    """Stop the request with the API's error body."""
    abort(error_response(status, error, description, fields=fields))


def parse_query(model: type[Query]) -> Query:
    values: dict[str, str] = {}
    repeated: dict[str, str] = {}
    for name in request.args:
        given = request.args.getlist(name)
        if len(given) > 1:
            repeated[name] = "is given more than once"
        values[name] = given[0]
    try:
        parsed = model.model_validate(values)
    except ValidationError as exc:
        invalid(
            400,
            "invalid_request",
            "some query parameters are invalid",
            {**field_errors(exc, "query"), **repeated},
        )
    if repeated:
        invalid(400, "invalid_request", "some query parameters are invalid", repeated)
    return parsed


def parse_path(model: type[Query], values: dict[str, str]) -> Query:
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        invalid(400, "invalid_request", "the URL names an invalid id", field_errors(exc, "path"))


def read_body() -> bytes:
    """The request body; 413 when it is larger than MAX_CONTENT_LENGTH, however it was sent."""
    data = request.get_data(cache=False)  # a Content-Length above the limit raises 413 here
    limit = request.max_content_length
    # A chunked body has no length up front: Werkzeug stops reading at the limit and returns what
    # it has, which may be valid JSON. One byte more on the wire means it was too large.
    chunked = request.content_length is None
    if chunked and limit is not None and len(data) >= limit and request.environ["wsgi.input"].read(1):
        raise RequestEntityTooLarge()
    return data


def parse_body(model: type[Body]) -> Body:
    if request.mimetype not in JSON_TYPES:
        invalid(415, "unsupported_media_type", "send the body as JSON (Content-Type: application/json)")
    data = read_body()
    try:
        return model.model_validate_json(data)
    except ValidationError as exc:
        if any(error["type"] == "json_invalid" for error in exc.errors(include_url=False)):
            invalid(400, "invalid_json", "the body is not valid UTF-8 JSON")
        invalid(422, "validation_failed", "some fields of the body are invalid", field_errors(exc, "body"))


def operation(summary: str, **spec: Any) -> Callable[[View], View]:
    """Declare and enforce a route's inputs; the view receives ``path``, ``query``, ``body``."""
    op = Operation(summary=summary, **spec)

    def decorator(view: View) -> View:
        @functools.wraps(view)
        def wrapper(**view_args: str) -> ResponseReturnValue:
            kwargs: dict[str, BaseModel] = {}
            if op.path is not None:
                kwargs["path"] = parse_path(op.path, view_args)
            # Routes without query parameters still refuse unknown ones: a typo is never ignored.
            query = parse_query(op.query or Query)
            if op.query is not None:
                kwargs["query"] = query
            if op.body is not None:
                kwargs["body"] = parse_body(op.body)
            return view(**kwargs)

        wrapper.operation = op  # type: ignore[attr-defined]  # a function attribute, read by operation_of
        return wrapper

    return decorator


def operation_of(view: object) -> Operation | None:
    """The ``Operation`` behind a (possibly further decorated) view function."""
    while view is not None:
        found = getattr(view, "operation", None)
        if isinstance(found, Operation):
            return found
        view = getattr(view, "__wrapped__", None)
    return None


def init_app(app: Flask) -> None:
    if app.config.get("MAX_CONTENT_LENGTH") is None:  # Flask's default is "no limit"
        app.config["MAX_CONTENT_LENGTH"] = MAX_CONTENT_LENGTH
