"""The worker's health: the last run of each kind, kept in ``REPORTS_DIR/.status/``.

Each kind of run writes its own small JSON file there (atomically, so a reader never sees half of
one, and with no read-modify-write, so a ``once`` beside ``run`` cannot lose the other's record):
``report.json`` (the last report: day, start, end, outcome), ``sync.json`` (the last custom-data
sync) and ``scheduler.json`` (when ``stats-worker run`` last started). ``stats-worker status``
reads them back, adds the next time ``STATS_CRON`` fires and the days whose custom data is still
pending, and says whether the worker is healthy: compose uses it as the worker's healthcheck.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from logto_m2m.files import write_atomically

from .config import WorkerSettings
from .cron import cron_trigger
from .pending import PendingSyncs

log = logging.getLogger(__name__)

STATUS_DIR = ".status"
#: A scheduled report that has not started this long after its time is overdue.
OVERDUE_AFTER = dt.timedelta(hours=1)

OK, FAILED, RUNNING = "ok", "failed", "running"


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


class RunLog:
    """Reads and writes the last-run records of one reports directory."""

    def __init__(self, reports_dir: Path) -> None:
        self.dir = reports_dir / STATUS_DIR

    def record(self, kind: str, **fields: Any) -> None:
        """Replace the record of ``kind``; a failure to write it is logged, never raised (the run
        it describes matters more than its record)."""
        content = {"kind": kind, **fields}
        data = (json.dumps(content, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
        try:
            write_atomically(self.dir / f"{kind}.json", data, mode=0o644)
        except OSError as exc:
            log.warning("could not record the %s run in %s (%s)", kind, self.dir, exc.strerror or exc)

    def read(self, kind: str) -> dict[str, Any] | None:
        try:
            content = json.loads((self.dir / f"{kind}.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {"outcome": FAILED, "message": f"the record {STATUS_DIR}/{kind}.json is unreadable"}
        return content if isinstance(content, dict) else None

    def started(self, kind: str, day: dt.date) -> dt.datetime:
        started = now_utc()
        self.record(kind, day=day.isoformat(), started_at=started.isoformat(), outcome=RUNNING)
        return started

    def finished(
        self, kind: str, day: dt.date, started: dt.datetime, outcome: str, message: str | None = None
    ) -> None:
        fields: dict[str, Any] = {
            "day": day.isoformat(),
            "started_at": started.isoformat(),
            "finished_at": now_utc().isoformat(),
            "outcome": outcome,
        }
        if message:
            fields["message"] = message
        self.record(kind, **fields)

    def scheduler_started(self, settings: WorkerSettings) -> None:
        self.record(
            "scheduler",
            started_at=now_utc().isoformat(),
            pid=os.getpid(),
            cron=settings.stats_cron,
            timezone=settings.stats_timezone,
        )


@dataclass
class Health:
    """What ``stats-worker status`` prints, and whether it exits 0."""

    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.problems


def _when(value: object) -> dt.datetime | None:
    try:
        when = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _describe(kind: str, record: dict[str, Any]) -> str:
    text = f"{kind:<9} {record.get('outcome', '?'):<8} day {record.get('day', '?')}"
    text += f", started {record.get('started_at', '?')}"
    if record.get("finished_at"):
        text += f", finished {record['finished_at']}"
    if record.get("message"):
        text += f"\n          {record['message']}"
    return text


def check_health(settings: WorkerSettings, now: dt.datetime | None = None) -> Health:
    """The worker's health from its records, its schedule and its pending syncs."""
    now = now or now_utc()
    runs = RunLog(settings.reports_dir)
    health = Health()
    report, sync, scheduler = runs.read("report"), runs.read("sync"), runs.read("scheduler")

    if report is None:
        health.lines.append("report    never run")
    else:
        health.lines.append(_describe("report", report))
        if report.get("outcome") == FAILED:
            health.problems.append(f"the last report (for {report.get('day', '?')}) failed")

    if sync is not None:
        health.lines.append(_describe("sync", sync))
        if sync.get("outcome") == FAILED and settings.logto_management_api_resource:
            health.problems.append(f"the last custom-data sync (for {sync.get('day', '?')}) failed")
    elif settings.logto_management_api_resource:
        health.lines.append("sync      never run")
    else:
        health.lines.append("sync      off (LOGTO_MANAGEMENT_API_RESOURCE is not set)")

    pending = PendingSyncs(settings.reports_dir)
    for day in pending.days():
        if not settings.logto_management_api_resource:  # turned off since: reported, not a fault
            health.lines.append(
                f"pending   custom data of {pending.count(day)} customer(s) for {day}, not retried: "
                f"the sync is off (delete {pending.dir} to forget it)"
            )
            continue
        health.lines.append(
            f"pending   custom data of {pending.count(day)} customer(s) for {day}: "
            "`stats-worker sync` retries it (so does the next scheduled run)"
        )
        problem = "custom data is pending for some days"
        if problem not in health.problems:
            health.problems.append(problem)

    if scheduler is not None:
        health.lines.append(
            f"scheduler started {scheduler.get('started_at', '?')} (pid {scheduler.get('pid', '?')})"
        )
    trigger = cron_trigger(settings.stats_cron, settings.timezone)
    upcoming = trigger.get_next_fire_time(None, now.astimezone(settings.timezone))
    health.lines.append(
        f"next run  {upcoming.isoformat() if upcoming else 'never'} "
        f"(STATS_CRON {settings.stats_cron!r} in {settings.stats_timezone})"
    )

    starts = [
        when
        for when in (_when((report or {}).get("started_at")), _when((scheduler or {}).get("started_at")))
        if when is not None
    ]
    if not starts:
        health.problems.append("no run recorded yet (has `stats-worker run` started?)")
    else:
        due = trigger.get_next_fire_time(None, max(starts).astimezone(settings.timezone))
        if due is not None and now > due + OVERDUE_AFTER:
            health.problems.append(f"the report due at {due.isoformat()} has not started: overdue")
    return health
