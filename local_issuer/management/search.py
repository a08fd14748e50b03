"""Logto's list search (packages/core/src/utils/search.ts): ``search`` or ``search.<field>`` values,
``mode``/``mode.<field>`` (``like``, the default, with SQL ``%``/``_`` wildcards, or ``exact``),
``joint`` (``or``, the default, or ``and``) and ``isCaseSensitive``.

Bad search parameters are Logto's 400 ``request.invalid_input`` with its wording. The regular
expression modes (``posix``, ``similar_to``) are not served here (a pattern from the client would
let it make the server backtrack for ever) and are refused the same way.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Sequence
from typing import Any

from flask import request

from ..errors import management_error
from .requests import RequestProblem

MODES = ("exact", "like")


def _problem(reason: str) -> RequestProblem:
    return RequestProblem(management_error(400, "request.invalid_input", reason=reason))


def _field(key: str) -> str | None:
    path = key.split(".")
    if len(path) > 2:
        raise _problem(
            f"Unsupported nested search field path `{'.'.join(path[1:])}` detected. "
            "Only the first level field is supported."
        )
    return path[1] if len(path) == 2 else None


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _like(pattern: str, flags: int) -> re.Pattern[str]:
    """SQL LIKE (``%`` any run, ``_`` one character) as a regular expression matched whole.

    Through fnmatch's translation, which keeps a run of wildcards from backtracking
    exponentially: a naive ``%_%_%_...`` to ``.*..*..*...`` takes seconds per item.
    """
    glob = "".join(
        "*" if ch == "%" else "?" if ch == "_" else f"[{ch}]" if ch in "*?[" else ch for ch in pattern
    )
    return re.compile(fnmatch.translate(glob), flags)


def search_filter(fields: Sequence[str]) -> Callable[[dict[str, Any]], bool]:
    """A predicate over items (camelCase dicts) for the request's search; ``fields`` in snake_case."""
    args = request.args
    joint = args.get("joint") or args.get("jointMode") or "or"
    if joint not in ("or", "and"):
        raise _problem(f"Search joint mode `{joint}` is not valid, expect one of and, or.")
    case_sensitive = (args.get("isCaseSensitive") or "false").lower() in ("true", "1", "yes", "y")
    modes: dict[str | None, str] = {}
    values: dict[str | None, list[str]] = {}
    for key, value in args.items(multi=True):
        if key.startswith("mode"):
            field = _field(key)
            if value not in MODES:
                raise _problem(f"Search match mode `{value}` is not valid, expect one of {', '.join(MODES)}.")
            modes[field] = value
        elif key.startswith("search"):
            values.setdefault(_field(key), []).append(value)
    checks: list[Callable[[dict[str, Any]], bool]] = []
    for field, wanted in values.items():
        mode = modes.get(field) or modes.get(None) or "like"
        column = _snake(field) if field else None
        if column is not None and column not in fields:
            raise _problem(f"Search field `{column}` is not valid, expect one of {', '.join(fields)}.")
        if not all(wanted):
            raise _problem("Search value cannot be empty.")
        if mode != "exact" and len(wanted) != 1:
            raise _problem("Only one search value is allowed when search mode is not `exact`.")
        checks.append(_check(mode, wanted, [column] if column else list(fields), case_sensitive))

    def matches(item: dict[str, Any]) -> bool:
        if not checks:
            return True
        results = (check(item) for check in checks)
        return all(results) if joint == "and" else any(results)

    return matches


def _check(
    mode: str, wanted: list[str], columns: list[str], case_sensitive: bool
) -> Callable[[dict[str, Any]], bool]:
    flags = 0 if case_sensitive else re.IGNORECASE
    if mode == "exact":
        targets = set(wanted) if case_sensitive else {v.lower() for v in wanted}
        match: Callable[[str], bool] = lambda text: (text if case_sensitive else text.lower()) in targets  # noqa: E731
    else:
        pattern = _like(wanted[0], flags)
        match = lambda text: pattern.match(text) is not None  # noqa: E731

    def check(item: dict[str, Any]) -> bool:
        camel = {_snake(name): value for name, value in item.items()}
        return any(isinstance(camel.get(c), str) and match(camel[c]) for c in columns)

    return check
