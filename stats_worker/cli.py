"""``stats-worker``: run the daily report on a schedule, once, or for a range of past days; retry
pending custom data; say whether the worker is healthy.

Exit codes: 0 done (``status``: healthy); 1 a report failed, or some customers' custom data did
not sync (``status``: the last run failed, a run is overdue, or custom data is pending); 2 bad
command line or settings; 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys

from logto_m2m.settings import SettingsError, load_settings

from .config import WorkerSettings

log = logging.getLogger("stats_worker")


def _date(text: str) -> dt.date:
    try:
        if len(text) != 10:
            raise ValueError
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-11-20") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stats-worker",
        description="Logto machine-to-machine stats worker: daily order reports from the shopping API.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("run", help="run the daily report on STATS_CRON until SIGTERM/SIGINT")
    once = commands.add_parser("once", help="build one report and exit")
    once.add_argument("--date", type=_date, help="day to report (default: yesterday in STATS_TIMEZONE)")
    backfill = commands.add_parser("backfill", help="build the reports of a range of days")
    backfill.add_argument("--from", dest="start", type=_date, required=True, metavar="DATE")
    backfill.add_argument("--to", dest="end", type=_date, required=True, metavar="DATE")
    commands.add_parser(
        "sync", help="retry the custom-data sync of the days left pending (not their reports) and exit"
    )
    commands.add_parser(
        "status",
        help="print the last report and sync runs and the next scheduled run; exit 1 when unhealthy",
    )
    return parser


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # urllib3's debug lines carry full URLs; keep them even in verbose mode out of the way.
    logging.getLogger("urllib3").setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "backfill" and args.start > args.end:
        print("stats-worker: --from must not be after --to", file=sys.stderr)
        return 2
    _configure_logging(args.verbose)
    try:
        settings = load_settings(WorkerSettings)
    except SettingsError as exc:
        print(f"stats-worker: configuration error: {exc}", file=sys.stderr)
        return 2

    if args.command == "status":
        return _status(settings)

    from .job import JOB_ERRORS, ReportJob, yesterday
    from .report_file import ReportsDirError
    from .scheduler import DailyScheduler

    job = ReportJob(settings)
    if args.command == "run":
        return DailyScheduler(job).run()
    if args.command == "sync":
        if not job.pending.days():
            print("no custom data is pending: nothing to sync")
            return 0
        try:
            return 0 if job.sync_pending() else 1
        except ReportsDirError as exc:
            log.error("%s", exc)
            return 1
    if args.command == "once":
        days = [args.date or yesterday(settings.timezone)]
    else:
        days = [args.start + dt.timedelta(days=n) for n in range((args.end - args.start).days + 1)]
    status = 0
    for day in days:
        try:
            content = job.run_day(day)
        except KeyboardInterrupt:  # the report file is written atomically: nothing half-done remains
            log.error("interrupted while building the report for %s; no file written", day)
            return 130
        except JOB_ERRORS as exc:
            log.error("report for %s failed: %s", day, exc)
            status = 1
            continue
        sync = content.get("custom_data_sync")
        if sync and sync["failed"]:  # the report is written; the job has said what is pending
            status = 1
    try:  # days whose sync failed before: retried now, their reports left as they are
        if not job.sync_pending(except_days=days):
            status = 1
    except ReportsDirError as exc:
        log.error("%s", exc)
        status = 1
    return status


def _status(settings: WorkerSettings) -> int:
    from .status import check_health

    health = check_health(settings)
    for line in health.lines:
        print(line)
    if health.healthy:
        print("healthy")
        return 0
    print("unhealthy: " + "; ".join(health.problems))
    return 1


if __name__ == "__main__":
    sys.exit(main())
