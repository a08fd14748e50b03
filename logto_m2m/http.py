"""One HTTP session factory: connection pooling, timeouts on every call, bounded retries.

Retries come from urllib3's ``Retry`` (exponential backoff with jitter, ``Retry-After`` honoured
for 429/503) rather than a hand-written loop. Only methods listed in ``allowed_methods`` are
retried after the request may have reached the server.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

DEFAULT_TIMEOUT = (3.05, 30.0)  # (connect, read) seconds
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# Longest wait a server's Retry-After may impose before we give up instead of sleeping.
MAX_RETRY_AFTER = 60.0


class BoundedRetry(Retry):
    """``Retry`` that refuses to sleep longer than ``MAX_RETRY_AFTER`` on a server's say-so."""

    def get_retry_after(self, response: BaseHTTPResponse) -> float | None:
        retry_after = super().get_retry_after(response)
        if retry_after is None:
            return None
        return min(retry_after, MAX_RETRY_AFTER)


class TimeoutSession(requests.Session):
    """A ``requests.Session`` whose calls all carry a timeout unless one is given."""

    def __init__(self, timeout: float | tuple[float, float] = DEFAULT_TIMEOUT) -> None:
        super().__init__()
        self.timeout = timeout

    def request(  # type: ignore[override]  # takes the options after the URL by keyword only, as all callers pass them
        self, method: str, url: str | bytes, **kwargs: Any
    ) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        return super().request(method, url, **kwargs)


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
