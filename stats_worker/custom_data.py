"""Each customer's daily figures into their Logto custom data, through the Management API.

``PATCH /api/users/{id}/custom-data`` merges top-level keys only (nested objects are replaced), so
everything lives under one key, ``shopping``, as ``{"days": {"YYYY-MM-DD": {...}}}``. Figures are
keyed by date: running a day again rewrites that day's entry instead of adding to a total, so
re-runs and backfills never double-count. The current value is read first so other days survive;
only the newest ``keep_days`` days are kept, so custom data does not grow without bound.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from logto_m2m.http import REQUEST_ID_HEADER, new_request_id
from logto_m2m.urls import redact_url

from .customers import CustomerFigures
from .token_client import BearerAuth, TokenRequestError

log = logging.getLogger(__name__)

CUSTOM_DATA_KEY = "shopping"
DEFAULT_KEEP_DAYS = 31
#: Unknown users are named in the log up to this many per day, then counted.
LOGGED_SKIPS = 10

#: What to do when the Management API refuses the worker's token.
DENIED_FIX = (
    "the worker's app needs a machine-to-machine role with the Management API permission 'all', and "
    "LOGTO_MANAGEMENT_API_RESOURCE must be the tenant's indicator "
    "(https://default.logto.app/api on Logto OSS)"
)


class SyncStopped(Exception):
    """Logto refused the worker or could not be reached: every further call would fail the same
    way, so the sync stops; the message says what happened and what to fix. The request id goes
    to the log, not into the message (which the report file keeps)."""

    def __init__(self, message: str, request_id: str | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id


@dataclass
class SyncOutcome:
    """How one day's sync went. ``failed`` counts customers whose figures are not in Logto yet."""

    synced: int = 0
    skipped: int = 0
    failed: int = 0
    error: str | None = None  # why the sync stopped, when it did

    def as_dict(self) -> dict[str, Any]:
        counts: dict[str, Any] = {"synced": self.synced, "skipped": self.skipped, "failed": self.failed}
        if self.error:
            counts["error"] = self.error
        return counts


class CustomDataSync:
    """Writes per-customer figures for one day; counts synced, skipped (unknown user) and failed."""

    def __init__(
        self,
        endpoint: str,
        session: requests.Session,
        auth: BearerAuth,
        *,
        concurrency: int = 4,
        keep_days: int = DEFAULT_KEEP_DAYS,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.session = session
        self.auth = auth
        self.concurrency = concurrency
        self.keep_days = keep_days

    def sync(
        self,
        day: dt.date,
        customers: Iterable[tuple[str, CustomerFigures]],
        on_failed: Callable[[str, CustomerFigures], None] = lambda _id, _figures: None,
    ) -> SyncOutcome:
        """Sync each customer's figures for ``day``; hand each one not written to ``on_failed``.

        A refusal (401/403, a token Logto will not issue), Logto out of reach or failing (5xx, 429
        after retries) stops the sync: the customers not yet written all go to ``on_failed``.
        """
        outcome = SyncOutcome()
        try:  # one token request up front: a refusal is seen once, not once per thread
            self.auth.client.get_token(self.auth.resource, self.auth.scopes)
        except TokenRequestError as exc:
            outcome.error = f"Logto did not issue a Management API token: {exc}"
            log.error("custom data for %s not synced: %s", day, outcome.error)

        def collect(done: Iterable[Future[str]]) -> None:
            for future in done:
                customer_id, figures = pending_ids.pop(future)
                try:
                    result = future.result()
                except SyncStopped as exc:
                    result = "failed"
                    if outcome.error is None:
                        outcome.error = str(exc)
                        log.error(
                            "custom data for %s: sync stopped: %s (request id %s)",
                            day,
                            exc,
                            exc.request_id or "none",
                        )
                if result == "failed":
                    on_failed(customer_id, figures)
                    outcome.failed += 1
                elif result == "skipped":
                    outcome.skipped += 1
                    if outcome.skipped <= LOGGED_SKIPS:
                        log.info("user %s is not in Logto; skipped", customer_id)
                else:
                    outcome.synced += 1

        pending_ids: dict[Future[str], tuple[str, CustomerFigures]] = {}
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="custom-data") as pool:
            pending: set[Future[str]] = set()
            for customer_id, figures in customers:
                if outcome.error is not None:  # every further call would fail the same way
                    on_failed(customer_id, figures)
                    outcome.failed += 1
                    continue
                future = pool.submit(self._sync_one, day, customer_id, figures)
                pending_ids[future] = (customer_id, figures)
                pending.add(future)
                if len(pending) >= 4 * self.concurrency:  # bounded: never queue the whole day
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    collect(done)
            collect(wait(pending).done)
        if outcome.skipped > LOGGED_SKIPS:
            log.info("... and %d more customers not in Logto; skipped", outcome.skipped - LOGGED_SKIPS)
        return outcome

    def _sync_one(self, day: dt.date, customer_id: str, figures: CustomerFigures) -> str:
        url = f"{self.endpoint}/api/users/{quote(customer_id, safe='')}/custom-data"
        request_id = new_request_id()
        headers = {REQUEST_ID_HEADER: request_id}
        try:
            current = self.session.get(url, auth=self.auth, headers=headers)
            if current.status_code == 200:
                shopping = self._merge(current.json(), day, figures)
                if shopping is None:
                    log.info(
                        "user %s: %s is older than the %d days kept in custom data; not written",
                        customer_id,
                        day,
                        self.keep_days,
                    )
                    return "skipped"
                request_id = new_request_id()
                response = self.session.patch(
                    url,
                    json={"customData": {CUSTOM_DATA_KEY: shopping}},
                    auth=self.auth,
                    headers={REQUEST_ID_HEADER: request_id},
                )
            else:
                response = current
        except TokenRequestError as exc:  # the token ran out and Logto would not issue another
            raise SyncStopped(f"Logto did not issue a Management API token: {exc}") from None
        except ValueError:
            log.warning(
                "custom data of user %s not updated: Logto's answer is not JSON (request id %s)",
                customer_id,
                request_id,
            )
            return "failed"
        except requests.RequestException as exc:
            raise SyncStopped(
                f"cannot reach Logto's Management API at {redact_url(self.endpoint)} "
                f"({type(exc).__name__}, after retries); check LOGTO_ENDPOINT and that Logto is running",
                request_id,
            ) from None
        status = response.status_code
        if status == 200:
            return "synced"
        if status == 404:
            return "skipped"
        if status in (401, 403):
            raise SyncStopped(
                f"the Management API answered {status} ({_code(response)}): {DENIED_FIX}", request_id
            )
        if status == 429 or status >= 500:
            raise SyncStopped(
                f"the Management API answered HTTP {status} ({_code(response)}) after retries: "
                "Logto is failing or overloaded",
                request_id,
            )
        log.warning(
            "custom data of user %s not updated: HTTP %s (%s; request id %s)",
            customer_id,
            status,
            _code(response),
            request_id,
        )
        return "failed"

    def _merge(self, custom_data: object, day: dt.date, figures: CustomerFigures) -> dict[str, Any] | None:
        """The new value of ``shopping`` (this day's entry set, other keys and days kept), or None
        when the day is older than the newest ``keep_days`` days and so would not be kept."""
        shopping = custom_data.get(CUSTOM_DATA_KEY) if isinstance(custom_data, dict) else None
        shopping = dict(shopping) if isinstance(shopping, dict) else {}
        days = shopping.get("days")
        days = {k: v for k, v in days.items() if _is_date(k)} if isinstance(days, dict) else {}
        days[day.isoformat()] = figures.as_dict()
        kept = dict(sorted(days.items())[-self.keep_days :])
        if day.isoformat() not in kept:
            return None
        shopping["days"] = kept
        return shopping


def _is_date(text: str) -> bool:
    try:
        dt.date.fromisoformat(text)
    except (TypeError, ValueError):
        return False
    return len(text) == 10


def _code(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return "no JSON body"
    return str(body.get("code", "no code")) if isinstance(body, dict) else "no code"
