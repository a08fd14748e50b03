"""Reading Management API requests as Logto does: JSON bodies checked against a schema (Logto's
koa-guard with zod), ``page``/``page_size`` pagination (koa-pagination), the 1 MiB body limit.

A body that does not fit the schema gets Logto's ``guard.invalid_input`` (400) with ``details`` in
the form of Logto's ``formatZodError``. Unknown fields are ignored, as zod objects strip them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode

from flask import Response, request
from pydantic import BaseModel, ConfigDict, ValidationError

from ..bodies import BodyCut, BodyTooLarge, read_capped
from ..errors import json_response, management_error

#: Logto's body limit (koa-body's default jsonLimit, 1 MB); the app's MAX_CONTENT_LENGTH is one more.
MAX_BODY_BYTES = 1024 * 1024
#: How deeply a JSON body may nest; far more than any real body, far less than Python's stack.
MAX_DEPTH = 64
#: koa-pagination's defaults.
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100

Model = TypeVar("Model", bound=BaseModel)


class Body(BaseModel):
    """A request body's schema, read as zod reads Logto's: unknown fields dropped, types not coerced."""

    model_config = ConfigDict(extra="ignore", strict=True)


class RequestProblem(Exception):
    """The request cannot be served; ``response`` is Logto's answer for it."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def invalid_body(details: str | None = None) -> RequestProblem:
    return RequestProblem(management_error(400, "guard.invalid_input", details=details, type="body"))


def too_large() -> RequestProblem:
    # Logto (koa-body, raw-body) refuses a body over its limit with 413, whether the size was
    # announced (Content-Length) or only found while reading a chunked body.
    return RequestProblem(management_error(413, "request.general"))


def read_json_body() -> Any:
    """The request's JSON body (``{}`` when empty, as koa-guard falls back to)."""
    try:
        raw = read_capped(request, MAX_BODY_BYTES)
    except BodyTooLarge:
        raise too_large() from None
    except BodyCut:
        raise invalid_body("The request body was not received in full.") from None
    if not raw.strip():
        return {}
    if request.mimetype != "application/json":
        raise invalid_body("The request body must be application/json.")
    try:
        body = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant, parse_float=_finite_float)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise invalid_body("The request body is not valid JSON.") from None
    if _depth(body) > MAX_DEPTH:
        raise invalid_body("The request body nests too deeply.")
    return body


def parse_body(model: type[Model]) -> Model:
    """Read the JSON body and validate it against ``model``."""
    body = read_json_body()
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise invalid_body(zod_details(exc, body)) from None


def _reject_constant(name: str) -> None:
    # NaN and Infinity are not JSON (RFC 8259 section 6): storing them would corrupt the state files.
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):  # 1e999 overflows to inf: as unstorable as Infinity itself
        raise ValueError("number out of range")
    return number


def _depth(value: object) -> int:
    """Nesting depth of a JSON value, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((child, level + 1) for child in children)
    return deepest


# -- zod-style error details -------------------------------------------------------------------------

_EXPECTED = {
    "string_type": "string",
    "int_type": "number",
    "int_parsing": "number",
    "int_from_float": "integer",
    "float_type": "number",
    "bool_type": "boolean",
    "list_type": "array",
    "dict_type": "object",
    "model_type": "object",
    "model_attributes_type": "object",
    "literal_error": "literal",
}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _at(data: Any, loc: tuple[Any, ...]) -> Any:
    for part in loc:
        if (isinstance(data, dict) and part in data) or (
            isinstance(data, list) and isinstance(part, int) and part < len(data)
        ):
            data = data[part]
        else:
            return None
    return data


def zod_details(exc: ValidationError, body: Any) -> str:
    """``Error in key path "name": (invalid_type) Expected string but received number.``, one line each."""
    lines = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = tuple(part for part in error["loc"] if not (isinstance(part, str) and part.endswith("]")))
        path = ".".join(str(part) for part in loc)
        kind = error["type"]
        ctx = error.get("ctx") or {}
        if kind == "missing":
            message = "(invalid_type) Required"
        elif kind in _EXPECTED:
            message = f"(invalid_type) Expected {_EXPECTED[kind]} but received {_json_type(_at(body, loc))}."
        elif kind == "string_too_short":
            message = f"(too_small) String must contain at least {ctx.get('min_length')} character(s)"
        elif kind == "string_too_long":
            message = f"(too_big) String must contain at most {ctx.get('max_length')} character(s)"
        elif kind in ("greater_than_equal", "greater_than"):
            message = f"(too_small) Number must be greater than or equal to {ctx.get('ge', ctx.get('gt'))}"
        elif kind in ("less_than_equal", "less_than"):
            message = f"(too_big) Number must be less than or equal to {ctx.get('le', ctx.get('lt'))}"
        elif kind == "too_short":
            message = f"(too_small) Array must contain at least {ctx.get('min_length')} element(s)"
        else:
            message = f"(custom) {error['msg'].removeprefix('Value error, ')}"
        lines.append(f'Error in key path "{path}": {message}')
    return "\n".join(lines)


# -- pagination ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    """``page``/``page_size`` of the request, or ``disabled`` when the route allows no pagination."""

    number: int
    size: int
    disabled: bool


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(value)
    return number


def read_page(*, optional: bool) -> Page:
    """koa-pagination: 400 ``guard.invalid_pagination`` for a bad value; ``optional`` routes return
    everything when neither ``page`` nor ``page_size`` is given."""
    raw_page, raw_size = request.args.get("page"), request.args.get("page_size")
    try:
        number = _positive(raw_page) if raw_page else 1
        size = _positive(raw_size) if raw_size else DEFAULT_PAGE_SIZE
        if size > MAX_PAGE_SIZE:
            raise ValueError(raw_size)
    except ValueError:
        raise RequestProblem(management_error(400, "guard.invalid_pagination")) from None
    return Page(number, size, disabled=optional and not raw_page and not raw_size)


def _link(page: int, rel: str) -> str:
    query = {name: request.args.get(name, "") for name in request.args}
    query["page"] = str(page)
    return f'<{request.host_url.rstrip("/")}{request.path}?{urlencode(query)}>; rel="{rel}"'


def paginated(items: list[dict[str, Any]], page: Page) -> Response:
    """The page of ``items`` with Logto's ``Total-Number`` and RFC 8288 ``Link`` headers."""
    if page.disabled:
        return json_response(200, items)
    start = (page.number - 1) * page.size
    response = json_response(200, items[start : start + page.size])
    total_pages = math.ceil(len(items) / page.size) or 1
    response.headers["Total-Number"] = str(len(items))
    response.headers.add("Link", _link(1, "first"))
    response.headers.add("Link", _link(total_pages, "last"))
    if page.number > 1:
        response.headers.add("Link", _link(page.number - 1, "prev"))
    if page.number < total_pages:
        response.headers.add("Link", _link(page.number + 1, "next"))
    return response
