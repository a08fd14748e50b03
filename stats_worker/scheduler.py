"""``stats-worker run``: the daily job on a cron schedule, in its own process.

APScheduler 3.x ``BlockingScheduler`` with one worker thread, so reports never overlap
(``max_instances=1`` guards the cron job, the single thread also serialises the catch-up).
``coalesce`` plus a generous ``misfire_grace_time`` mean a run missed while the machine slept
still happens once when it wakes (the default grace is 1 s). SIGTERM and SIGINT stop the
scheduler and wait for a report in progress, so a file is never cut in half.

At start, a missing (or unfinished) yesterday is built again, and days whose custom data is still
pending get their sync retried, alone; each daily run retries those too, after its own report.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import signal
import threading
from pathlib import Path
from types import FrameType

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger

from .cron import cron_trigger
from .job import JOB_ERRORS, ReportJob, yesterday
from .pending import PendingSyncs
from .report_file import ReportsDirError, check_writable, report_path

log = logging.getLogger(__name__)

JOB_ID = "daily-report"
SYNC_CATCH_UP_ID = "catch-up-sync"
MISFIRE_GRACE_SECONDS = 6 * 3600
JOB_OPTIONS = {"coalesce": True, "max_instances": 1, "misfire_grace_time": MISFIRE_GRACE_SECONDS}


def catch_up_reason(path: Path, day: dt.date, pending: PendingSyncs | None = None) -> str | None:
    """Why ``day`` must be built again at start: no report, or one whose sync never finished.

    Customers whose sync failed are kept pending (``pending.py``) and retried without rebuilding
    the day; only a report that says customers failed with no pending file to retry them from (the
    sync was cut short, or the file is gone) needs the day's orders again.
    """
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"no report for {day} yet"
    except (OSError, ValueError):
        return f"the report for {day} is unreadable"
    sync = content.get("custom_data_sync") if isinstance(content, dict) else None
    if not isinstance(sync, dict):
        return None
    if "pending" in sync:
        return f"the custom-data sync of {day} was cut short"
    has_pending = pending is not None and pending.path(day).exists()
    if isinstance(sync.get("failed"), int) and sync["failed"] > 0 and not has_pending:
        return f"custom data of {sync['failed']} customer(s) not synced for {day}"
    return None


class DailyScheduler:
    """Runs ``ReportJob`` for yesterday on ``STATS_CRON``; catches up a missing yesterday at start."""

    def __init__(self, job: ReportJob) -> None:
        self.job = job
        self.settings = job.settings
        self.tz = self.settings.timezone
        self._running = threading.Lock()  # held while a report is being built
        self._stopping = threading.Event()
        self.scheduler = BlockingScheduler(
            timezone=self.tz,
            executors={"default": ThreadPoolExecutor(max_workers=1)},
        )

    def report(self, day: dt.date | None = None) -> bool:
        """Build one report (default: yesterday), then retry other days' pending custom data; log
        a failure instead of raising it."""
        day = day or yesterday(self.tz)
        with self._running:
            done = False
            try:
                self.job.run_day(day)
                done = True
            except JOB_ERRORS as exc:
                log.error("report for %s failed: %s (the scheduler keeps running)", day, exc)
            except Exception:  # a bug must not stop tomorrow's report
                log.exception("report for %s failed unexpectedly (the scheduler keeps running)", day)
            if not self._stopping.is_set():
                self._sync_pending(except_days={day})
            return done

    def sync_pending(self) -> bool:
        """Retry the days whose custom data is pending (their reports stay as they are)."""
        with self._running:
            return self._sync_pending()

    def _sync_pending(self, except_days: set[dt.date] | None = None) -> bool:
        try:
            return self.job.sync_pending(except_days=except_days or set())
        except JOB_ERRORS as exc:
            log.error("retrying pending custom data failed: %s (the scheduler keeps running)", exc)
        except Exception:  # a bug must not stop tomorrow's report
            log.exception("retrying pending custom data failed unexpectedly (the scheduler keeps running)")
        return False

    def schedule(self) -> CronTrigger:
        """Add the daily job; a catch-up run if yesterday's report is missing or unfinished; a
        sync-only catch-up if some days' custom data is pending."""
        trigger = cron_trigger(self.settings.stats_cron, self.tz)
        self.scheduler.add_job(
            self.report, trigger, id=JOB_ID, name="daily report", replace_existing=True, **JOB_OPTIONS
        )
        missed = yesterday(self.tz)
        pending = PendingSyncs(self.settings.reports_dir)
        reason = catch_up_reason(report_path(self.settings.reports_dir, missed), missed, pending)
        if reason:
            log.info("%s: catching up now", reason)
            self.scheduler.add_job(
                self.report,
                "date",
                args=[missed],
                id=f"catch-up-{missed}",
                name=f"catch-up {missed}",
                **JOB_OPTIONS,
            )
        elif pending.days():  # the catch-up above retries these too, after its report
            log.info("custom data pending for %s: retrying the sync now", ", ".join(map(str, pending.days())))
            self.scheduler.add_job(
                self.sync_pending, "date", id=SYNC_CATCH_UP_ID, name="catch-up sync", **JOB_OPTIONS
            )
        return trigger

    def run(self) -> int:
        """Run until SIGTERM or SIGINT; return the exit code (1 at once if REPORTS_DIR is unusable:
        no report could ever be written)."""
        try:
            check_writable(self.settings.reports_dir)
        except ReportsDirError as exc:
            log.error("%s", exc)
            return 1
        trigger = self.schedule()
        self.job.runs.scheduler_started(self.settings)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        next_run = trigger.get_next_fire_time(None, dt.datetime.now(self.tz))
        log.info(
            "stats worker started: cron %r in %s, next report at %s",
            self.settings.stats_cron,
            self.settings.stats_timezone,
            next_run.isoformat(),
        )
        if not self._stopping.is_set():
            self.scheduler.start()  # returns once _on_signal shut it down
        if self._running.locked():
            log.info("waiting for the report in progress to finish")
        with self._running:
            pass
        log.info("stats worker stopped")
        return 0

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self._stopping.is_set():
            log.info("%s again: still waiting for the report in progress", signal.Signals(signum).name)
            return
        self._stopping.set()
        log.info("%s received: stopping", signal.Signals(signum).name)
        with contextlib.suppress(SchedulerNotRunningError):
            self.scheduler.shutdown(wait=False)
