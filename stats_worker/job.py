"""One day's report, start to finish: token, orders page by page, figures, custom data, file."""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import logging
import sys
from pathlib import Path
from typing import Any, TextIO

from logto_m2m.http import make_session
from logto_m2m.logto import MANAGEMENT_API_SCOPE

from .api_client import ApiError, ShoppingApiClient
from .config import WorkerSettings
from .custom_data import CustomDataSync
from .customers import CustomerTally
from .report import DailyReport, ReportError, summary
from .report_file import reports_lock, write_report
from .token_client import BearerAuth, TokenClient, TokenRequestError

log = logging.getLogger(__name__)

#: What a failed day can raise; anything else is a bug.
JOB_ERRORS = (TokenRequestError, ApiError, ReportError, OSError)


def yesterday(tz: dt.tzinfo, now: dt.datetime | None = None) -> dt.date:
    """The calendar day before today in ``tz``."""
    now = now or dt.datetime.now(dt.UTC)
    return now.astimezone(tz).date() - dt.timedelta(days=1)


@contextlib.contextmanager
def cyclic_gc_paused():
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
        http = {
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
            body_retries=min(settings.stats_http_retries, 3),
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

    def run_day(self, day: dt.date) -> dict[str, Any]:
        """Build, sync and write the report for ``day``; return its content."""
        with reports_lock(self.settings.reports_dir):
            return self._run_day(day)

    def _run_day(self, day: dt.date) -> dict[str, Any]:
        settings = self.settings
        log.info("building the report for %s (%s)", day, settings.stats_timezone)
        with CustomerTally() as customers:
            report = DailyReport(day, settings.timezone, customers)
            with cyclic_gc_paused():
                for page in self.api.iter_order_pages(day, settings.stats_timezone):
                    report.add_orders(page)
            if self.custom_data is not None:
                report.custom_data_sync = self.custom_data.sync(day, customers)
            content = report.as_dict()
        path: Path = write_report(settings.reports_dir, day, content)
        print(summary(content), file=self.out)
        print(f"  report: {path}", file=self.out, flush=True)
        log.info("report for %s written to %s", day, path)
        return content
