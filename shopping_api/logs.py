"""Log lines an operator can read and trust: one format for gunicorn's lines and the app's.

- ``logging_config`` is gunicorn's ``logconfig_dict`` (gunicorn.conf.py): the app's loggers,
  gunicorn's error log and its access log all go to stderr, as text or (``LOG_FORMAT=json``) one
  JSON object per line (python-json-logger);
- a value a client controls (a path, a header) can hold control characters: the text format
  escapes them (``\\x0a``), JSON escapes them by its own rules, so no request can forge a line;
- every line logged while a request runs carries its request id, taken from a well-formed
  ``X-Request-ID`` or made here, and returned in the response's ``X-Request-ID``.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, g, has_request_context, request

from logto_m2m.logtext import escape_controls

REQUEST_ID_HEADER = "X-Request-ID"
#: What a request id from a client (or a proxy) may look like: a UUID, a hex or base64url string,
#: a trace id. Anything else is replaced, so a header cannot smuggle text into the logs.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:+/=\-]{1,128}")
#: gunicorn's access log line. No query string (%(q)s, or %(r)s which contains it) and no
#: Referer (a URL too): a token sent as ?access_token= must never reach a log.
ACCESS_LOG_FORMAT = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms "%(a)s"'
TEXT_FORMAT = "%(asctime)s [%(process)d] %(levelname)s %(name)s [%(request_id)s] %(message)s"
JSON_FIELDS = "%(asctime)s %(process)d %(levelname)s %(name)s %(request_id)s %(message)s"


class TextFormatter(logging.Formatter):
    """The text format, with control characters escaped in everything but a traceback."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return escape_controls(super().formatMessage(record))


class RequestIdFilter(logging.Filter):
    """Put the running request's id (or "-") on every record as ``request_id``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = g.get("request_id", "-") if has_request_context() else "-"
        return True


class AccessFieldsFilter(logging.Filter):
    """Give gunicorn's access records their request id and, for JSON, fields of their own.

    gunicorn logs each request after the response, outside the app, with the values (its
    "atoms") as the record's arguments; the request id is the response's header.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        atoms = record.args
        record.request_id = "-"  # a line gunicorn logs there without its atoms
        if isinstance(atoms, Mapping):
            record.request_id = atoms["{x-request-id}o"]  # gunicorn answers "-" when absent
            record.http = {
                "method": atoms["m"],
                "path": atoms["U"],
                "status": atoms["s"],
                "bytes": atoms["B"],
                "duration_ms": atoms["M"],
                "remote_addr": atoms["h"],
            }
        return True


def logging_config(log_format: str = "text") -> dict[str, Any]:
    """The ``logging.config.dictConfig`` of a served API (gunicorn's ``logconfig_dict``).

    No levels here: ``set_log_level`` applies gunicorn's ``loglevel`` (LOG_LEVEL, or
    ``--log-level``) to every logger once gunicorn has read its command line.
    """
    if log_format == "json":
        formatter: dict[str, Any] = {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": JSON_FIELDS,
            "rename_fields": {"levelname": "level", "name": "logger", "asctime": "time"},
        }
    else:
        formatter = {"()": TextFormatter, "fmt": TEXT_FORMAT}

    def stderr(*filters: str) -> dict[str, Any]:
        return {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stderr",
            "formatter": "line",
            "filters": list(filters),
        }

    def logger(handler: str) -> dict[str, Any]:
        return {"handlers": [handler], "propagate": False}

    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"line": formatter},
        "filters": {
            "request_id": {"()": RequestIdFilter},
            "access_fields": {"()": AccessFieldsFilter},
        },
        "handlers": {
            "app": stderr("request_id"),
            "access": stderr("access_fields"),
        },
        "root": {"handlers": ["app"]},
        "loggers": {"gunicorn.error": logger("app"), "gunicorn.access": logger("access")},
    }


def set_log_level(level: str) -> None:
    """One level for the app's lines, gunicorn's and the access log (INFO records: hidden above info)."""
    for name in ("", "gunicorn.error", "gunicorn.access"):
        logging.getLogger(name).setLevel(level.upper())


def _take_request_id() -> None:
    given = request.headers.get(REQUEST_ID_HEADER, "")
    g.request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex


def _return_request_id(response: Response) -> Response:
    response.headers[REQUEST_ID_HEADER] = g.get("request_id") or uuid.uuid4().hex
    return response


def init_app(app: Flask) -> None:
    app.before_request(_take_request_id)
    app.after_request(_return_request_id)
