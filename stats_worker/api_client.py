"""The shopping API as the worker sees it: one day's orders, page by page.

Transient faults are retried at two levels, both bounded and with jittered backoff:
- the session's urllib3 ``Retry`` (connection errors, 429/5xx with ``Retry-After``, GET only);
- a page whose body breaks off mid-stream (connection reset after the headers) is fetched again
  with tenacity, since urllib3 has already handed the response over when that happens.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import queue
import sys
import threading
from collections.abc import Generator, Iterator
from typing import Any, TypeVar

import msgspec
import requests
from tenacity import (
    before_sleep_log,
    retry,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from .orders import Order, decode_orders

log = logging.getLogger(__name__)

#: Body-level faults worth one more try: the server or the network cut the page off.
BROKEN_BODY = (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)


T = TypeVar("T")
_END = object()
#: Seconds a thread holding the GIL keeps it while the download thread waits for it.
FETCH_SWITCH_INTERVAL = 0.0005


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def read_ahead(pages: Iterator[T], depth: int = 1) -> Generator[T, None, None]:
    """Yield ``pages`` while a background thread fetches the ones after them.

    The thread asks for page N+1 as soon as page N is in, without waiting for the caller to take
    page N: a cursor's pages come one after another, so the download is the floor, and the caller's
    work (the tally) hides behind it. The thread pauses when ``depth`` pages are waiting, so memory
    stays at ``depth + 2`` pages. An exception in the thread is raised here, in the caller's.
    """
    handoff: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stopped = threading.Event()

    def fetch() -> None:
        try:
            for page in pages:
                handoff.put(page)
                if stopped.is_set():
                    return
            handoff.put(_END)
        except BaseException as exc:  # raised again in the caller's thread
            handoff.put(_Failed(exc))

    thread = threading.Thread(target=fetch, name="orders-read-ahead", daemon=True)
    # The caller's decoding and tallying hold the GIL; after each wait on the network the thread
    # needs it back to send the next request. Python makes a busy thread hand it over after the
    # switch interval (5 ms): shortened, the download waits for the tally at most 0.5 ms a time.
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(min(switch_interval, FETCH_SWITCH_INTERVAL))
    thread.start()
    try:
        while (page := handoff.get()) is not _END:
            if isinstance(page, _Failed):
                raise page.error
            yield page
    finally:
        stopped.set()
        sys.setswitchinterval(switch_interval)
        while thread.is_alive():  # let a fetch under way finish, and a waiting put go through
            with contextlib.suppress(queue.Empty):
                handoff.get(timeout=0.05)


class ApiError(Exception):
    """The shopping API could not give us the orders; the message says why."""


class ShoppingApiClient:
    """Reads orders from the shopping API with a bearer-token auth and a retrying session."""

    def __init__(
        self,
        base_url: str,
        session: requests.Session,
        auth: requests.auth.AuthBase,
        *,
        page_size: int = 1000,
        body_retries: int = 3,
        backoff: float = 0.5,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session
        self.auth = auth
        self.page_size = page_size
        self._get_json = retry(
            retry=retry_if_exception_type(BROKEN_BODY),
            stop=stop_after_attempt(body_retries + 1),
            wait=wait_exponential(multiplier=backoff, max=20) + wait_random(0, backoff),
            before_sleep=before_sleep_log(log, logging.WARNING),
            reraise=True,
        )(self._get_json_once)

    def iter_order_pages(self, day: dt.date, timezone: str) -> Iterator[list[Order]]:
        """Yield the orders of ``day`` (calendar day in ``timezone``) one page at a time.

        The next page downloads in a background thread while the caller works on this one. That
        thread reads no more of a page than its ``next_cursor``; decoding the orders happens here,
        in the caller's thread, so the next request never waits for it.
        """
        for body in read_ahead(self._order_page_bodies(day, timezone)):
            yield decode_orders(body)

    def _order_page_bodies(self, day: dt.date, timezone: str) -> Iterator[bytes]:
        params: dict[str, Any] = {"date": day.isoformat(), "tz": timezone, "limit": self.page_size}
        seen_cursors: set[str] = set()
        while True:
            try:
                body = self._get_json("/orders", params)
            except BROKEN_BODY as exc:
                raise ApiError(
                    f"GET /orders kept breaking off mid-response ({type(exc).__name__}, "
                    "after retries); the API or the network is failing"
                ) from None
            cursor = _next_cursor(body)
            yield body
            if not cursor:
                return
            if cursor in seen_cursors:  # a server bug must not turn into an endless loop
                raise ApiError("GET /orders returned a cursor it had already returned")
            seen_cursors.add(cursor)
            params = {**params, "cursor": cursor}

    def _get_json_once(self, path: str, params: dict[str, Any]) -> bytes:
        url = self.base_url + path
        try:
            response = self.session.get(url, params=params, auth=self.auth)
        except BROKEN_BODY:
            raise
        except requests.RequestException as exc:
            raise ApiError(
                f"cannot reach the shopping API at {self.base_url} ({type(exc).__name__}, "
                "after retries); check SHOPPING_API_URL and that the API is running"
            ) from None
        if response.status_code != 200:
            raise ApiError(_describe_failure(path, response))
        return response.content


class _PageHead(msgspec.Struct):
    """What the download thread needs of a page: its orders are skipped over, not decoded."""

    orders: msgspec.Raw
    next_cursor: str | None = None


# An array is told apart from other JSON that is not a page, for a clearer message.
_decode_head = msgspec.json.Decoder(_PageHead | list[msgspec.Raw]).decode


def _next_cursor(body: bytes) -> str | None:
    """A page's ``next_cursor``, read without decoding its orders."""
    try:
        head = _decode_head(body)
    except msgspec.ValidationError:
        raise ApiError(
            "GET /orders returned a body without an orders list and next_cursor; "
            "is SHOPPING_API_URL the shopping API?"
        ) from None
    except msgspec.DecodeError:
        raise ApiError("GET /orders returned a body that is not JSON") from None
    if not isinstance(head, _PageHead):
        raise ApiError("GET /orders returned JSON that is not an object")
    return head.next_cursor


def _describe_failure(path: str, response: requests.Response) -> str:
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = {}
    detail = ""
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        detail = f": {body['error']}"
        if isinstance(body.get("error_description"), str):
            detail += f" ({body['error_description']})"
    hint = ""
    if status == 401:
        hint = (
            " The API rejected a fresh token too: SHOPPING_API_RESOURCE must equal the API's "
            "identifier, and the API must trust this Logto issuer."
        )
    elif status == 403:
        challenge = response.headers.get("WWW-Authenticate", "")
        hint = (
            f" The token lacks a scope the route needs ({challenge or 'no challenge'});"
            " check STATS_SCOPES and the app's roles."
        )
    elif status == 429 or status >= 500:
        hint = " Still failing after retries."
    return f"GET {path} answered HTTP {status}{detail}.{hint}"
