"""One HTTP session factory: connection pooling, timeouts on every call, bounded retries.

Retries come from urllib3's ``Retry`` (exponential backoff with jitter, ``Retry-After`` honoured
for 429/503) rather than a hand-written loop. Only methods listed in ``allowed_methods`` are
retried after the request may have reached the server.

Every request carries an ``X-Request-ID`` (the caller's, or a fresh one), so one call can be found
in the logs of both sides. Each retry is logged as one line of ours (method, path without the
query, what failed, attempt, wait, request id); urllib3's own retry warnings are dropped, since
they print the whole URL, query string (a page cursor, say) included.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError, ReadTimeoutError
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = (3.05, 30.0)  # (connect, read) seconds
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# Longest wait a server's Retry-After may impose before we give up instead of sleeping.
MAX_RETRY_AFTER = 60.0
REQUEST_ID_HEADER = "X-Request-ID"

#: The request id of the call in progress in this thread, for the retry log line.
_current_request_id: ContextVar[str | None] = ContextVar("current_request_id", default=None)


def new_request_id() -> str:
    """A fresh request id: 32 hex digits, safe in any header and log line."""
    return uuid.uuid4().hex


def request_path(url: str) -> str:
    """The path of ``url`` without query or fragment (a cursor or a token must not reach a log)."""
    return urlsplit(url).path or "/"


class BoundedRetry(Retry):
    """``Retry`` that refuses to sleep longer than ``MAX_RETRY_AFTER`` on a server's say-so, and
    logs each retry as one line of ours."""

    def get_retry_after(self, response: BaseHTTPResponse) -> float | None:
        retry_after = super().get_retry_after(response)
        if retry_after is None:
            return None
        return min(retry_after, MAX_RETRY_AFTER)

    def sleep(self, response: BaseHTTPResponse | None = None) -> None:
        # Same choice as urllib3's own sleep (Retry-After when the server sent one, else the
        # jittered backoff), computed once so the logged wait is the real one.
        wait = None
        if self.respect_retry_after_header and response is not None:
            wait = self.get_retry_after(response)
        if not wait:
            wait = self.get_backoff_time()
        self._log_retry(wait)
        if wait > 0:
            time.sleep(wait)

    def _log_retry(self, wait: float) -> None:
        if not self.history:
            return
        last = self.history[-1]
        if last.status is not None:
            cause = f"HTTP {last.status}"
        else:
            cause = type(last.error).__name__ if last.error is not None else "error"
        attempt = len(self.history)
        limit = f" of {attempt + self.total}" if isinstance(self.total, int) else ""
        log.warning(
            "%s %s: %s; retry %d%s in %.1f s (request id %s)",
            last.method or "?",
            request_path(last.url or ""),
            cause,
            attempt,
            limit,
            wait,
            _current_request_id.get() or "none",
        )


class _DropUrllib3RetryLines(logging.Filter):
    """urllib3 logs each retry with the full URL; ``BoundedRetry`` logs it without the query."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        return not (message.startswith("Retrying (") or message.startswith("Retry: "))


_URLLIB3_FILTER = _DropUrllib3RetryLines()


def _silence_urllib3_retries() -> None:
    pool_log = logging.getLogger("urllib3.connectionpool")
    if _URLLIB3_FILTER not in pool_log.filters:
        pool_log.addFilter(_URLLIB3_FILTER)


class TimeoutSession(requests.Session):
    """A ``requests.Session`` whose calls all carry a timeout and a request id unless given."""

    def __init__(self, timeout: float | tuple[float, float] = DEFAULT_TIMEOUT) -> None:
        super().__init__()
        self.timeout = timeout

    def request(  # type: ignore[override]  # same signature, spelled as **kwargs
        self, method: str, url: str, **kwargs: Any
    ) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        headers: Mapping[str, str] = kwargs.get("headers") or {}
        request_id = headers.get(REQUEST_ID_HEADER)
        if not request_id:
            request_id = new_request_id()
            kwargs["headers"] = {**headers, REQUEST_ID_HEADER: request_id}
        token = _current_request_id.set(request_id)
        try:
            return super().request(method, url, **kwargs)
        finally:
            _current_request_id.reset(token)


def make_session(
    *,
    retries: int = 4,
    backoff_factor: float = 0.5,
    backoff_max: float = 20.0,
    allowed_methods: Iterable[str] = Retry.DEFAULT_ALLOWED_METHODS,
    status_forcelist: Iterable[int] = RETRY_STATUSES,
    timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
    pool_maxsize: int = 10,
    user_agent: str = "logto-m2m-reference",
) -> requests.Session:
    """Return a session that retries transient faults ``retries`` times with jittered backoff."""
    _silence_urllib3_retries()
    retry = BoundedRetry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        other=0,
        backoff_factor=backoff_factor,
        backoff_max=backoff_max,
        backoff_jitter=backoff_factor,
        allowed_methods=frozenset(m.upper() for m in allowed_methods),
        status_forcelist=frozenset(status_forcelist),
        respect_retry_after_header=True,
        raise_on_status=False,  # hand the last response to the caller, who knows what it means
    )
    session = TimeoutSession(timeout)
    adapter = HTTPAdapter(max_retries=retry, pool_connections=pool_maxsize, pool_maxsize=pool_maxsize)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = user_agent
    return session


def body_timed_out(exc: BaseException) -> bool:
    """True when ``exc`` is a read timeout hit while reading a response's *body*.

    requests raises it as a plain ``ConnectionError`` wrapping urllib3's ``ReadTimeoutError``
    (the headers had arrived, so urllib3 had already handed the response over and cannot retry):
    the server answered, then stalled, which is not "cannot connect".
    """

    return (
        isinstance(exc, requests.exceptions.ConnectionError)
        and not isinstance(exc, requests.exceptions.ConnectTimeout)
        and bool(exc.args)
        and isinstance(exc.args[0], ReadTimeoutError)
    )


def headers_timed_out(exc: BaseException) -> bool:
    """True when the server accepted the connection but sent no response headers in time (after
    the retries, urllib3 reports it as ``MaxRetryError`` inside requests' ``ConnectionError``)."""
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return True
    reason = exc.args[0] if isinstance(exc, requests.exceptions.ConnectionError) and exc.args else None
    return isinstance(reason, MaxRetryError) and isinstance(reason.reason, ReadTimeoutError)
