"""One day's report, start to finish: token, orders page by page, figures, file, custom data.

The report file is written before the custom-data sync starts, so whatever goes wrong with the
sync (no Management API scope, 401/403, Logto out of reach or failing) the day's figures are kept.
Customers not synced go to a pending file (``pending.py``); a later run retries the sync alone.
Every run leaves its record in ``REPORTS_DIR/.status/`` for ``stats-worker status``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import json
import logging
import sys
from collections.abc import Collection, Iterator
from typing import Any, TextIO

from logto_m2m.http import make_session
from logto_m2m.logto import MANAGEMENT_API_SCOPE

from .api_client import ApiError, ShoppingApiClient
from .config import WorkerSettings
from .custom_data import CustomDataSync, SyncOutcome
from .customers import CustomerFigures, CustomerTally
from .pending import PendingSyncs
from .report import DailyReport, ReportError, summary
from .report_file import ReportsDirError, report_path, reports_lock, write_report
from .status import FAILED, OK, RunLog
from .token_client import BearerAuth, TokenClient, TokenRequestError

log = logging.getLogger(__name__)

#: What a failed day can raise; anything else is a bug.
JOB_ERRORS = (TokenRequestError, ApiError, ReportError, ReportsDirError, OSError)

#: Said whenever custom data is left pending.
RETRY_HINT = (
    "the report is written; `stats-worker sync` retries only the custom data "
    "(so does the next `stats-worker run`, at start and after each daily report)"
)


def yesterday(tz: dt.tzinfo, now: dt.datetime | None = None) -> dt.date:
    """The calendar day before today in ``tz``."""
    now = now or dt.datetime.now(dt.UTC)
    return now.astimezone(tz).date() - dt.timedelta(days=1)


@contextlib.contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a day is tallied.

    Pages and tallies hold no reference cycles, so reference counting frees everything; the
    cyclic collector would only rescan the day's growing tallies over and over (about a fifth of
    the worker's CPU time on a million orders).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class ReportJob:
    """Everything a report needs, built once so the token cache lives as long as the process."""

    def __init__(self, settings: WorkerSettings, *, out: TextIO | None = None) -> None:
        self.settings = settings
        self.out = out or sys.stdout
        timeout = settings.stats_http_timeout_seconds
        http: dict[str, Any] = {
            "retries": settings.stats_http_retries,
            "backoff_factor": settings.stats_http_backoff_seconds,
            "timeout": (min(5.0, timeout), timeout),
            "user_agent": "logto-m2m-stats-worker",
        }
        self.tokens = TokenClient(
            settings.token_endpoint,
            settings.logto_app_id,
            settings.logto_app_secret.get_secret_value(),
            session=make_session(allowed_methods=("POST",), **http),
        )
        self.api = ShoppingApiClient(
            settings.shopping_api_url,
            make_session(allowed_methods=("GET",), **http),
            BearerAuth(self.tokens, settings.shopping_api_resource, settings.stats_scopes),
            page_size=settings.stats_page_size,
            body_retries=settings.stats_http_retries,
            backoff=settings.stats_http_backoff_seconds,
        )
        self.custom_data: CustomDataSync | None = None
        if settings.logto_management_api_resource:
            # PATCH is safe to retry here: it sets the same value again.
            self.custom_data = CustomDataSync(
                settings.logto_endpoint,
                make_session(
                    allowed_methods=("GET", "PATCH"), pool_maxsize=settings.stats_sync_concurrency, **http
                ),
                BearerAuth(self.tokens, settings.logto_management_api_resource, MANAGEMENT_API_SCOPE),
                concurrency=settings.stats_sync_concurrency,
            )

        self.runs = RunLog(settings.reports_dir)
        self.pending = PendingSyncs(settings.reports_dir)

    def run_day(self, day: dt.date) -> dict[str, Any]:
        """Build and write the report for ``day``, then sync its custom data; return its content.

        Raises one of ``JOB_ERRORS`` when the report could not be built or written. A failed sync
        does not raise: the content's ``custom_data_sync`` says how many customers failed.
        """
        with reports_lock(self.settings.reports_dir):  # checks REPORTS_DIR before any token request
            started = self.runs.started("report", day)
            try:
                return self._run_day(day, started)
            except BaseException as exc:
                self.runs.finished("report", day, started, FAILED, _failure(exc))
                raise

    def sync_pending(self, except_days: Collection[dt.date] = ()) -> bool:
        """Retry the custom-data sync of every day that has customers pending (not the orders,
        not the report); return True when nothing is left pending."""
        days = [day for day in self.pending.days() if day not in except_days]
        if not days:
            return True
        if self.custom_data is None:  # the sync was turned off since: nothing to retry it with
            log.warning(
                "custom data is pending for %s, but LOGTO_MANAGEMENT_API_RESOURCE is not set: not "
                "retried (delete %s to forget it)",
                ", ".join(map(str, days)),
                self.pending.dir,
            )
            return True
        with reports_lock(self.settings.reports_dir):
            results = [self._sync_pending_day(self.custom_data, day) for day in days]
        return all(outcome.failed == 0 for outcome in results)

    def _run_day(self, day: dt.date, started: dt.datetime) -> dict[str, Any]:
        settings = self.settings
        log.info("building the report for %s (%s)", day, settings.stats_timezone)
        with CustomerTally() as customers:
            report = DailyReport(day, settings.timezone, customers)
            with cyclic_gc_paused():
                for page in self.api.iter_order_pages(day, settings.stats_timezone):
                    report.add_orders(page)
            content = report.as_dict()
            if self.custom_data is not None:
                # Written before the sync, so a sync that fails or is cut short loses nothing;
                # "pending" tells a later start that this day's sync never finished.
                content["custom_data_sync"] = {
                    "synced": 0,
                    "skipped": 0,
                    "failed": 0,
                    "pending": len(customers),
                }
            path = write_report(settings.reports_dir, day, content)
            log.info("report for %s written to %s", day, path)
            self.runs.finished("report", day, started, OK)
            if self.custom_data is not None:
                outcome = self._sync(self.custom_data, day, customers)
                content["custom_data_sync"] = outcome.as_dict()
                write_report(settings.reports_dir, day, content)
        print(summary(content), file=self.out)
        print(f"  report: {path}", file=self.out, flush=True)
        sync = content.get("custom_data_sync")
        if sync and sync["failed"]:
            print(f"  custom data NOT synced for {sync['failed']} customer(s): {RETRY_HINT}", file=self.out)
            if sync.get("error"):
                print(f"  why: {sync['error']}", file=self.out, flush=True)
        return content

    def _sync(
        self,
        sync: CustomDataSync,
        day: dt.date,
        customers: Iterator[tuple[str, CustomerFigures]] | CustomerTally,
    ) -> SyncOutcome:
        """Sync ``customers`` of ``day``; keep the ones that failed pending; record the run."""
        started = self.runs.started("sync", day)
        with self.pending.recording(day) as record:
            outcome = sync.sync(day, customers, record)
        if outcome.failed:
            message = f"{outcome.failed} customer(s) not synced: {outcome.error or 'see the log'}"
            self.runs.finished("sync", day, started, FAILED, message)
            log.error("custom data for %s: %d customer(s) kept pending; %s", day, outcome.failed, RETRY_HINT)
        else:
            self.runs.finished("sync", day, started, OK)
        return outcome

    def _sync_pending_day(self, sync: CustomDataSync, day: dt.date) -> SyncOutcome:
        log.info("retrying the custom-data sync of %s (%d customers pending)", day, self.pending.count(day))
        outcome = self._sync(sync, day, self.pending.read(day))
        # Bring the report's own counts up to date, so it reads as if the sync had gone well at once.
        path = report_path(self.settings.reports_dir, day)
        try:
            content = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            content = None
        before = content.get("custom_data_sync") if isinstance(content, dict) else None
        if isinstance(content, dict) and isinstance(before, dict):
            synced, skipped = before.get("synced", 0), before.get("skipped", 0)
            if not (type(synced) is int and type(skipped) is int):  # edited by hand: count afresh
                synced = skipped = 0
            counts: dict[str, Any] = {
                "synced": synced + outcome.synced,
                "skipped": skipped + outcome.skipped,
                "failed": outcome.failed,
            }
            if outcome.error:
                counts["error"] = outcome.error
            content["custom_data_sync"] = counts
            write_report(self.settings.reports_dir, day, content)
        print(
            f"{day}: custom data retried: {outcome.synced} synced, {outcome.skipped} skipped, "
            f"{outcome.failed} still pending",
            file=self.out,
            flush=True,
        )
        return outcome


def _failure(exc: BaseException) -> str:
    if isinstance(exc, JOB_ERRORS):
        return str(exc)
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return f"unexpected {type(exc).__name__} (a bug: see the log)"
