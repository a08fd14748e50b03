"""The shopping API as the worker sees it: one day's orders, page by page.

Transient faults are retried at two levels, both bounded and with jittered backoff:
- the session's urllib3 ``Retry`` (connection errors, 429/5xx with ``Retry-After``, GET only);
- a page whose body breaks off mid-stream (connection reset after the headers) or stalls (the
  headers and part of the JSON arrive, then nothing until the read timeout) is fetched again with
  tenacity, since urllib3 has already handed the response over when that happens.

Every page request carries its own ``X-Request-ID``; a failure names it, so the same call can be
found in the API's log.

The next page downloads in a background thread (``read_ahead``) that reads no more of a page than
its ``next_cursor``; the orders are decoded into typed classes (``orders.py``, msgspec) in the
caller's thread, so the next request never waits for the tally.
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
    RetryCallState,
    retry,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from logto_m2m.http import REQUEST_ID_HEADER, body_timed_out, headers_timed_out, new_request_id
from logto_m2m.urls import redact_url

from .orders import Order, decode_orders

log = logging.getLogger(__name__)

#: Body-level faults worth one more try: the server or the network cut the page off.
BROKEN_BODY = (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)


class BodyFault(Exception):
    """A page's headers arrived, then its body broke off or stalled; worth another try."""

    def __init__(self, what: str, method: str, path: str, request_id: str) -> None:
        super().__init__(f"{method} {path}: the response body {what} (request id {request_id})")
        self.what = what
        self.method = method
        self.path = path
        self.request_id = request_id


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
        self.attempts = body_retries + 1
        self._get_json = retry(
            retry=retry_if_exception_type(BodyFault),
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=backoff, max=20) + wait_random(0, backoff),
            before_sleep=self._log_retry,
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
                page = self._get_json("/orders", params)
            except BodyFault as exc:
                raise ApiError(self._gave_up(exc)) from None
            body, cursor = page
            yield body
            if not cursor:
                return
            if cursor in seen_cursors:  # a server bug must not turn into an endless loop
                raise ApiError("GET /orders returned a cursor it had already returned")
            seen_cursors.add(cursor)
            params = {**params, "cursor": cursor}

    def _get_json_once(self, path: str, params: dict[str, Any]) -> tuple[bytes, str | None]:
        """One page: its body as bytes and its ``next_cursor`` (the orders are left undecoded)."""
        url = self.base_url + path
        request_id = new_request_id()
        try:
            response = self.session.get(
                url, params=params, auth=self.auth, headers={REQUEST_ID_HEADER: request_id}
            )
        except BROKEN_BODY:
            raise BodyFault("broke off mid-response", "GET", path, request_id) from None
        except requests.RequestException as exc:
            if body_timed_out(exc):
                raise BodyFault("stalled until the read timeout", "GET", path, request_id) from None
            raise ApiError(self._unreachable(exc, path, request_id)) from None
        if response.status_code != 200:
            raise ApiError(f"{_describe_failure(path, response)} (request id {request_id})")
        body = response.content
        return body, _next_cursor(path, body, request_id)

    def _unreachable(self, exc: requests.RequestException, path: str, request_id: str) -> str:
        where = redact_url(self.base_url)
        if headers_timed_out(exc):
            return (
                f"GET {path}: the shopping API at {where} sent no answer within the read timeout "
                f"(STATS_HTTP_TIMEOUT_SECONDS), after retries; it is overloaded or stuck "
                f"(request id {request_id})"
            )
        return (
            f"cannot reach the shopping API at {where} ({type(exc).__name__}, after retries); "
            f"check SHOPPING_API_URL and that the API is running (request id {request_id})"
        )

    def _gave_up(self, fault: BodyFault) -> str:
        if fault.what.startswith("stalled"):
            cause = (
                "the API sent the headers and part of the page, then nothing until the read timeout "
                "(STATS_HTTP_TIMEOUT_SECONDS); the API is stuck mid-response or the network drops data"
            )
        else:
            cause = "the connection was cut before the page was complete; the API or the network is failing"
        return (
            f"{fault.method} {fault.path}: the response body {fault.what} on each of "
            f"{self.attempts} attempt(s): {cause} (last request id {fault.request_id})"
        )

    def _log_retry(self, state: RetryCallState) -> None:
        fault = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        if isinstance(fault, BodyFault):
            log.warning(
                "%s %s: response body %s; retry %d of %d in %.1f s (request id %s)",
                fault.method,
                fault.path,
                fault.what,
                state.attempt_number,
                self.attempts - 1,
                wait,
                fault.request_id,
            )


class _PageHead(msgspec.Struct):
    """What the download thread needs of a page: its orders are skipped over, not decoded."""

    orders: msgspec.Raw
    next_cursor: str | None = None


# An array is told apart from other JSON that is not a page, for a clearer message.
_decode_head = msgspec.json.Decoder(_PageHead | list[msgspec.Raw]).decode


def _next_cursor(path: str, body: bytes, request_id: str) -> str | None:
    """A page's ``next_cursor``, read without decoding its orders."""
    try:
        head = _decode_head(body)
    except msgspec.ValidationError:
        raise ApiError(
            f"GET {path} returned a body without an orders list and next_cursor; "
            f"is SHOPPING_API_URL the shopping API? (request id {request_id})"
        ) from None
    except msgspec.DecodeError:
        raise ApiError(f"GET {path} returned a body that is not JSON (request id {request_id})") from None
    if not isinstance(head, _PageHead):
        raise ApiError(f"GET {path} returned JSON that is not an object (request id {request_id})")
    return head.next_cursor


#: What a 401 to a *fresh* token means, keyed by a phrase of the API's ``error_description``
#: (shopping_api/auth.py words them). BearerAuth has already fetched a new token and retried once.
REFUSED_TOKEN_HINTS = (
    (
        "unknown key",
        "The API does not know the key that signed the token: Logto rotated its signing keys and the "
        "API has not fetched the new JWKS yet (it refetches for an unknown key at most once per "
        "cooldown: retry in a minute), or the API trusts another Logto's keys (its LOGTO_JWKS_URI / "
        "LOGTO_ENDPOINT).",
    ),
    (
        "signature is invalid",
        "The token's signature does not match the API's copy of that key: the API and the worker "
        "talk to different Logto tenants (compare the API's LOGTO_JWKS_URI with LOGTO_ENDPOINT).",
    ),
    (
        "trusted issuer",
        "The API expects another issuer: the API's LOGTO_ISSUER (default {LOGTO_ENDPOINT}/oidc) must "
        "equal the iss Logto writes into tokens, which follows Logto's own ENDPOINT setting, not the "
        "URL the worker reaches it by; and both must name the same Logto.",
    ),
    (
        "another api (aud)",
        "The token was issued for another API: SHOPPING_API_RESOURCE must equal the API's identifier "
        "exactly (no trailing slash), on the worker and on the API.",
    ),
    (
        "expired",
        "The API finds a fresh token expired or not yet valid: the clocks of the worker's, Logto's "
        "and the API's hosts disagree (sync them with NTP).",
    ),
    (
        "in the future",
        "The API finds a fresh token issued in the future: the clocks of Logto's and the API's "
        "hosts disagree (sync them with NTP).",
    ),
)
UNKNOWN_REFUSAL_HINT = (
    "The API rejected a fresh token too, without saying why in a way the worker knows. The usual "
    "causes: SHOPPING_API_RESOURCE differs from the API's identifier (aud); the API expects another "
    "issuer (its LOGTO_ISSUER); Logto rotated its keys and the API has not seen the new ones yet; "
    "the API's clock is off. The API's log names the reason for this request id."
)


def refused_token_hint(description: str | None) -> str:
    """The likely cause of a 401 to a fresh token, from the API's ``error_description``."""
    text = (description or "").lower()
    for phrase, hint in REFUSED_TOKEN_HINTS:
        if phrase in text:
            return hint
    return UNKNOWN_REFUSAL_HINT


def _describe_failure(path: str, response: requests.Response) -> str:
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = {}
    detail = ""
    description: str | None = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        detail = f": {body['error']}"
        if isinstance(body.get("error_description"), str):
            description = body["error_description"]
            detail += f" ({description})"
    hint = ""
    if status == 401:
        hint = " " + refused_token_hint(description)
    elif status == 403:
        challenge = response.headers.get("WWW-Authenticate", "")
        hint = (
            f" The token lacks a scope the route needs ({challenge or 'no challenge'});"
            " check STATS_SCOPES and the app's roles."
        )
    elif status == 429 or status >= 500:
        hint = " Still failing after retries."
    return f"GET {path} answered HTTP {status}{detail}.{hint}"
