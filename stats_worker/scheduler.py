"""``stats-worker run``: the daily job on a cron schedule, in its own process.

APScheduler 3.x ``BlockingScheduler`` with one worker thread, so reports never overlap
(``max_instances=1`` guards the cron job, the single thread also serialises the catch-up).
``coalesce`` plus a generous ``misfire_grace_time`` mean a run missed while the machine slept
still happens once when it wakes (the default grace is 1 s). SIGTERM and SIGINT stop the
scheduler and wait for a report in progress, so a file is never cut in half.
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
from .report_file import report_path

log = logging.getLogger(__name__)

JOB_ID = "daily-report"
MISFIRE_GRACE_SECONDS = 6 * 3600
JOB_OPTIONS = {"coalesce": True, "max_instances": 1, "misfire_grace_time": MISFIRE_GRACE_SECONDS}


def catch_up_reason(path: Path, day: dt.date) -> str | None:
    """Why ``day`` must be run again at start: no report, or customers whose sync failed."""
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"no report for {day} yet"
    except (OSError, ValueError):
        return f"the report for {day} is unreadable"
    sync = content.get("custom_data_sync") if isinstance(content, dict) else None
    if isinstance(sync, dict) and isinstance(sync.get("failed"), int) and sync["failed"] > 0:
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
        """Build one report (default: yesterday); log a failure instead of raising it."""
        day = day or yesterday(self.tz)
        with self._running:
            try:
                self.job.run_day(day)
                return True
            except JOB_ERRORS as exc:
                log.error("report for %s failed: %s (the scheduler keeps running)", day, exc)
            except Exception:  # a bug must not stop tomorrow's report
                log.exception("report for %s failed unexpectedly (the scheduler keeps running)", day)
            return False

    def schedule(self) -> CronTrigger:
        """Add the daily job, and a catch-up run if yesterday's report is missing."""
        trigger = cron_trigger(self.settings.stats_cron, self.tz)
        self.scheduler.add_job(
            self.report, trigger, id=JOB_ID, name="daily report", replace_existing=True, **JOB_OPTIONS
        )
        missed = yesterday(self.tz)
        reason = catch_up_reason(report_path(self.settings.reports_dir, missed), missed)
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
        return trigger

    def run(self) -> int:
        """Run until SIGTERM or SIGINT; return the exit code."""
        trigger = self.schedule()
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
