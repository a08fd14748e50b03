"""``stats-worker status``: the last report and sync runs, the next scheduled run, and an exit
status a healthcheck can use (0 healthy, 1 not)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from logto_m2m.settings import load_settings
from stats_worker.cli import main
from stats_worker.config import WorkerSettings
from stats_worker.status import OVERDUE_AFTER, check_health
from tests.support import clean_env, free_port, run_script

from .fakes import MGMT, FakeServer, Logto, ManagementApi, OrdersApi, make_orders

DAY = dt.date(2026, 11, 20)


@pytest.fixture
def env(worker_env, token_endpoint, logto, tmp_path):
    from zoneinfo import ZoneInfo

    orders = make_orders(DAY, ZoneInfo("UTC"), 30, customers=3)
    management = ManagementApi(token_endpoint, {"user-1": {}})
    logto.handler = Logto(token_endpoint, management)
    with FakeServer(OrdersApi(token_endpoint, orders)) as shop:
        worker_env(SHOPPING_API_URL=shop.url, STATS_CRON="5 0 * * *", REPORTS_DIR=str(tmp_path / "reports"))
        yield worker_env, management


def status(capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["status"])
    return code, capsys.readouterr().out


def test_healthy_after_a_good_run_with_the_next_run_named(env, capsys):
    assert main(["once", "--date", str(DAY)]) == 0
    code, out = status(capsys)
    assert code == 0, out
    assert out.splitlines()[0].startswith(f"report    ok       day {DAY}, started ")
    assert "sync      off (LOGTO_MANAGEMENT_API_RESOURCE is not set)" in out
    settings = load_settings(WorkerSettings)
    upcoming = dt.datetime.now(dt.UTC).replace(hour=0, minute=5, second=0, microsecond=0)
    if upcoming <= dt.datetime.now(dt.UTC):
        upcoming += dt.timedelta(days=1)
    assert f"next run  {upcoming.isoformat()} (STATS_CRON '5 0 * * *' in UTC)" in out
    assert out.rstrip().endswith("healthy") and settings.reports_dir.is_dir()


def test_no_run_recorded_is_unhealthy(env, capsys):
    code, out = status(capsys)
    assert code == 1
    assert "report    never run" in out and "unhealthy: no run recorded yet" in out


def test_a_failed_report_is_unhealthy_and_says_why_without_credentials(env, capsys):
    worker_env, _management = env
    worker_env(SHOPPING_API_URL=f"http://stats:pa55word@127.0.0.1:{free_port()}", STATS_HTTP_RETRIES="0")
    assert main(["once", "--date", str(DAY)]) == 1
    code, out = status(capsys)
    assert code == 1
    assert f"report    failed   day {DAY}" in out
    assert "cannot reach the shopping API at http://***@127.0.0.1:" in out and "pa55word" not in out
    assert f"unhealthy: the last report (for {DAY}) failed" in out


def test_a_failed_sync_is_unhealthy_until_it_is_retried(env, capsys):
    worker_env, management = env
    worker_env(LOGTO_MANAGEMENT_API_RESOURCE=MGMT)
    management.forbidden = True
    assert main(["once", "--date", str(DAY)]) == 1
    code, out = status(capsys)
    assert code == 1
    assert f"report    ok       day {DAY}" in out and f"sync      failed   day {DAY}" in out
    assert "3 customer(s) not synced: the Management API answered 403 (auth.forbidden)" in out
    assert f"pending   custom data of 3 customer(s) for {DAY}: `stats-worker sync` retries it" in out
    assert "the last custom-data sync (for 2026-11-20) failed" in out

    management.forbidden = False
    assert main(["sync"]) == 0
    code, out = status(capsys)
    assert code == 0, out
    assert f"sync      ok       day {DAY}" in out and "pending" not in out


def test_a_scheduled_run_that_never_started_is_overdue(env, capsys):
    assert main(["once", "--date", str(DAY)]) == 0
    settings = load_settings(WorkerSettings)
    now = dt.datetime.now(dt.UTC)
    assert check_health(settings, now).healthy
    # The next 00:05 after the run, plus the grace: no report has started since.
    due = (now + dt.timedelta(days=1)).replace(hour=0, minute=5, second=0, microsecond=0)
    if due - now > dt.timedelta(days=1):
        due -= dt.timedelta(days=1)
    assert check_health(settings, due + OVERDUE_AFTER - dt.timedelta(seconds=1)).healthy
    late = check_health(settings, due + OVERDUE_AFTER + dt.timedelta(seconds=1))
    assert late.problems == [f"the report due at {due.isoformat()} has not started: overdue"]


def test_status_as_a_healthcheck_runs_the_real_command(env, tmp_path):
    """What compose runs: a new process reading what earlier runs left (it survives restarts)."""
    worker_env, _management = env
    values = worker_env()
    assert main(["once", "--date", str(DAY)]) == 0
    result = run_script("stats-worker", "status", env=clean_env(**values), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "report    ok" in result.stdout and result.stdout.rstrip().endswith("healthy")
    assert Path(values["REPORTS_DIR"], ".status", "report.json").is_file()


def test_pending_custom_data_of_a_sync_turned_off_since_is_reported_not_a_fault(env, capsys):
    worker_env, management = env
    worker_env(LOGTO_MANAGEMENT_API_RESOURCE=MGMT)
    management.forbidden = True
    assert main(["once", "--date", str(DAY)]) == 1
    worker_env(LOGTO_MANAGEMENT_API_RESOURCE="")  # the operator turns the sync off
    assert main(["once", "--date", "2026-11-21"]) == 0  # the pending day is not a failure now
    assert main(["sync"]) == 0
    code, out = status(capsys)
    assert code == 0, out  # the old failed sync is shown, but no longer counts
    assert f"custom data of 3 customer(s) for {DAY}, not retried: the sync is off (delete " in out
    assert "custom data is pending" not in out  # not among the problems
