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
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any
from urllib.parse import quote

import requests

from .customers import CustomerFigures

log = logging.getLogger(__name__)

CUSTOM_DATA_KEY = "shopping"
DEFAULT_KEEP_DAYS = 31
#: Unknown users are named in the log up to this many per day, then counted.
LOGGED_SKIPS = 10


class ManagementApiDenied(Exception):
    """The Management API refused the token itself (401/403): no use trying other users."""


class CustomDataSync:
    """Writes per-customer figures for one day; counts synced, skipped (unknown user) and failed."""

    def __init__(
        self,
        endpoint: str,
        session: requests.Session,
        auth: requests.auth.AuthBase,
        *,
        concurrency: int = 4,
        keep_days: int = DEFAULT_KEEP_DAYS,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.session = session
        self.auth = auth
        self.concurrency = concurrency
        self.keep_days = keep_days

    def sync(self, day: dt.date, customers: Iterable[tuple[str, CustomerFigures]]) -> dict[str, int]:
        counts = {"synced": 0, "skipped": 0, "failed": 0}
        denied: list[str] = []

        def collect(done: Iterable[Future[str]]) -> None:
            for future in done:
                customer_id = pending_ids.pop(future)
                try:
                    outcome = future.result()
                except ManagementApiDenied as exc:
                    counts["failed"] += 1
                    if not denied:
                        log.error("%s", exc)
                    denied.append(str(exc))
                    continue
                counts[outcome] += 1
                if outcome == "skipped" and counts["skipped"] <= LOGGED_SKIPS:
                    log.info("user %s is not in Logto; skipped", customer_id)

        pending_ids: dict[Future[str], str] = {}
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="custom-data") as pool:
            pending: set[Future[str]] = set()
            for customer_id, figures in customers:
                if denied:  # every further call would be refused the same way
                    counts["failed"] += 1
                    continue
                future = pool.submit(self._sync_one, day, customer_id, figures)
                pending_ids[future] = customer_id
                pending.add(future)
                if len(pending) >= 4 * self.concurrency:  # bounded: never queue the whole day
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    collect(done)
            collect(wait(pending).done)
        if counts["skipped"] > LOGGED_SKIPS:
            log.info("... and %d more customers not in Logto; skipped", counts["skipped"] - LOGGED_SKIPS)
        return counts

    def _sync_one(self, day: dt.date, customer_id: str, figures: CustomerFigures) -> str:
        url = f"{self.endpoint}/api/users/{quote(customer_id, safe='')}/custom-data"
        try:
            current = self.session.get(url, auth=self.auth)
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
                response = self.session.patch(
                    url, json={"customData": {CUSTOM_DATA_KEY: shopping}}, auth=self.auth
                )
            else:
                response = current
        except (requests.RequestException, ValueError) as exc:
            log.warning("custom data of user %s not updated: %s", customer_id, type(exc).__name__)
            return "failed"
        if response.status_code == 200:
            return "synced"
        if response.status_code == 404:
            return "skipped"
        if response.status_code in (401, 403):
            raise ManagementApiDenied(
                f"the Management API answered {response.status_code} ({_code(response)}): the worker's "
                "app needs a machine-to-machine role with the Management API permission 'all', and "
                "LOGTO_MANAGEMENT_API_RESOURCE must be the tenant's indicator "
                "(https://default.logto.app/api on Logto OSS)"
            )
        log.warning(
            "custom data of user %s not updated: HTTP %s (%s)",
            customer_id,
            response.status_code,
            _code(response),
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
