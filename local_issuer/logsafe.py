"""Log lines a client cannot forge: control characters escaped, every logged value capped.

A request path is decoded before it is logged (``%0a`` becomes a newline) and custom-data keys
are chosen by the caller, so both would otherwise let a client write a fake log line, send
terminal escape sequences to whoever tails the log, or turn one request into a line of 200 KB.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, cast

from gunicorn.glogging import Logger

from logto_m2m.logtext import escape_controls

if TYPE_CHECKING:
    from gunicorn.glogging import _AtomsDict

#: Characters of any logged value: at most this many, then a note of how many were left out.
VALUE_LIMIT = 256


def loggable(value: object, limit: int = VALUE_LIMIT) -> str:
    """``value`` as one safe line: control characters as ``\\xNN``, at most ``limit`` characters."""
    text = value if isinstance(value, str) else str(value)
    cut = text[:limit]
    escaped = escape_controls(cut)
    return escaped if len(text) <= limit else f"{escaped}...(+{len(text) - limit} chars)"


class SafeArgsFilter(logging.Filter):
    """Makes every string argument of a record loggable; the message templates are the code's own."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(loggable(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: loggable(v) if isinstance(v, str) else v for k, v in record.args.items()}
        return True


class SafeAccessLogger(Logger):
    """gunicorn's logger, with every access-log atom (path, user agent, ...) made loggable."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        # The access log's atoms are made safe in atoms(); its record keeps gunicorn's SafeAtoms.
        for handler in self.error_log.handlers:
            handler.addFilter(SafeArgsFilter())

    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> _AtomsDict:
        atoms = super().atoms(resp, req, environ, request_time)
        values = cast("dict[str, Any]", atoms)  # the same object: its keys are not literals here
        for name, value in values.items():  # in place: gunicorn's SafeAtoms also answers header lookups
            if isinstance(value, str):
                values[name] = loggable(value)
        return atoms
