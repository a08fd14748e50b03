"""The shopping API as the worker sees it: one day's orders, page by page.

Transient faults are retried at two levels, both bounded and with jittered backoff:
- the session's urllib3 ``Retry`` (connection errors, 429/5xx with ``Retry-After``, GET only);
- a page whose body breaks off mid-stream (connection reset after the headers) or stalls (the
  headers and part of the JSON arrive, then nothing until the read timeout) is fetched again with
  tenacity, since urllib3 has already handed the response over when that happens.

Every page request carries its own ``X-Request-ID``; a failure names it, so the same call can be
found in the API's log.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from enum import Enum
from typing import Any, TypeVar

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
_End = Enum("_End", "END")  # an enum member, so ``page is _END`` tells the type checker what page is
_END = _End.END


def read_ahead(pages: Iterator[T]) -> Iterator[T]:
    """Yield ``pages`` while the next page is already being fetched in a background thread.

    The API builds page N+1 while this process tallies page N, so with a CPU to spare the
    report's work hides behind the API's instead of adding to it. One page ahead only: memory
    stays at two pages.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="orders-read-ahead") as pool:
        upcoming = pool.submit(next, pages, _END)
        while True:
            page = upcoming.result()
            if page is _END:
                return
            upcoming = pool.submit(next, pages, _END)
            yield page


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

    def iter_order_pages(self, day: dt.date, timezone: str) -> Iterator[list[dict[str, Any]]]:
        """Yield the orders of ``day`` (calendar day in ``timezone``) one page at a time."""
        params: dict[str, Any] = {"date": day.isoformat(), "tz": timezone, "limit": self.page_size}
        seen_cursors: set[str] = set()
        while True:
            try:
                body = self._get_json("/orders", params)
            except BodyFault as exc:
                raise ApiError(self._gave_up(exc)) from None
            orders, cursor = body.get("orders"), body.get("next_cursor")
            if not isinstance(orders, list) or not (cursor is None or isinstance(cursor, str)):
                raise ApiError(
                    "GET /orders returned a body without an orders list and next_cursor; "
                    "is SHOPPING_API_URL the shopping API?"
                )
            yield orders
            if not cursor:
                return
            if cursor in seen_cursors:  # a server bug must not turn into an endless loop
                raise ApiError("GET /orders returned a cursor it had already returned")
            seen_cursors.add(cursor)
            params = {**params, "cursor": cursor}

    def _get_json_once(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
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
        try:
            body = response.json()
        except ValueError:
            raise ApiError(f"GET {path} returned a body that is not JSON (request id {request_id})") from None
        if not isinstance(body, dict):
            raise ApiError(f"GET {path} returned JSON that is not an object (request id {request_id})")
        return body

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
