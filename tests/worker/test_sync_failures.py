"""The day's report is never lost to a custom-data sync problem, and a later run retries the sync
alone; REPORTS_DIR is checked before any token is asked for. Real HTTP servers on 127.0.0.1 play
Logto (token endpoint and Management API on one port) and the shopping API."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
import warnings
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from logto_m2m.settings import load_settings
from stats_worker.cli import main
from stats_worker.config import WorkerSettings
from stats_worker.job import ReportJob
from stats_worker.pending import PendingSyncs
from stats_worker.scheduler import JOB_ID, SYNC_CATCH_UP_ID, DailyScheduler
from tests.support import clean_env, free_port, run_script

from .expected import expected_customers
from .fakes import MGMT, FakeServer, Logto, ManagementApi, OrdersApi, Reply, make_orders

DAY = dt.date(2026, 11, 20)
TZ = ZoneInfo("Europe/Berlin")
KNOWN = ("user-1", "user-2")  # in Logto; the other seven customers of the day are not


@pytest.fixture
def orders():
    return make_orders(DAY, TZ, 450, customers=9)


@pytest.fixture
def shop(token_endpoint, orders):
    with FakeServer(OrdersApi(token_endpoint, orders)) as server:
        yield server


@pytest.fixture
def management(token_endpoint, logto):
    """The Management API, served by the same server as the token endpoint."""
    api = ManagementApi(token_endpoint, {user: {"nickname": user} for user in KNOWN})
    logto.handler = Logto(token_endpoint, api)
    return api


@pytest.fixture
def env(worker_env, shop, management, tmp_path):
    worker_env(
        SHOPPING_API_URL=shop.url,
        STATS_TIMEZONE="Europe/Berlin",
        STATS_PAGE_SIZE="100",
        LOGTO_MANAGEMENT_API_RESOURCE=MGMT,
        REPORTS_DIR=str(tmp_path / "reports"),
    )
    return worker_env


def reports_dir(tmp_path: Path) -> Path:
    return tmp_path / "reports"


def read_report(tmp_path: Path, day: dt.date = DAY) -> dict:
    return json.loads((reports_dir(tmp_path) / f"{day}.json").read_text())


def management_calls(logto) -> list:
    return [r for r in logto.requests if r.path.startswith("/api/")]


def no_scope(token_endpoint, management):
    """Real Logto gives an app without the Management API role a token with no scope at all."""
    token_endpoint.grants[MGMT] = set()


def forbidden(token_endpoint, management):
    management.forbidden = True


def unauthorized(token_endpoint, management):
    management.failing = Reply(401, {"code": "auth.unauthorized", "message": "Unauthorized."})


def failing(token_endpoint, management):
    management.failing = Reply(503, {"code": "guard.unavailable", "message": "busy"})


def token_refused(token_endpoint, management):
    del token_endpoint.grants[MGMT]  # the indicator is not registered: invalid_target


@pytest.mark.parametrize(
    ("breakage", "why"),
    [
        (no_scope, "Logto granted none of the requested scopes (all) for https://default.logto.app/api"),
        (token_refused, "invalid_target"),
        (forbidden, "the Management API answered 403 (auth.forbidden)"),
        (unauthorized, "the Management API answered 401 (auth.unauthorized)"),
        (failing, "the Management API answered HTTP 503 (guard.unavailable) after retries"),
    ],
)
def test_a_failed_sync_keeps_the_report_and_a_later_run_retries_only_the_sync(
    env, token_endpoint, management, logto, shop, orders, tmp_path, capsys, caplog, breakage, why
):
    breakage(token_endpoint, management)
    assert main(["once", "--date", str(DAY)]) == 1

    report = read_report(tmp_path)
    assert report["orders"] == 450  # the day's figures are kept
    sync = report["custom_data_sync"]
    assert (sync["synced"], sync["skipped"], sync["failed"]) == (0, 0, 9) and why in sync["error"]
    assert PendingSyncs(reports_dir(tmp_path)).count(DAY) == 9
    pending_file = PendingSyncs(reports_dir(tmp_path)).path(DAY)
    assert stat.S_IMODE(pending_file.stat().st_mode) == 0o600  # customers and what they spent
    out = capsys.readouterr().out
    assert "custom data NOT synced for 9 customer(s)" in out and "`stats-worker sync`" in out
    assert why in out
    assert len(management_calls(logto)) <= 2 * 4 * 4  # it stopped asking (retries included)

    # The cause is fixed: the next run syncs the pending customers, without fetching orders again.
    token_endpoint.grants[MGMT] = {"all"}
    management.forbidden, management.failing = False, None
    pages_before = len(shop.requests)
    capsys.readouterr()
    assert main(["sync"]) == 0
    assert len(shop.requests) == pages_before
    assert "2026-11-20: custom data retried: 2 synced, 7 skipped, 0 still pending" in capsys.readouterr().out
    figures = expected_customers(orders)
    for user in KNOWN:
        assert management.users[user]["shopping"] == {"days": {str(DAY): figures[user]}}
    assert read_report(tmp_path)["custom_data_sync"] == {"synced": 2, "skipped": 7, "failed": 0}
    assert sorted(p.name for p in reports_dir(tmp_path).iterdir()) == [".status", f"{DAY}.json"]
    assert main(["sync"]) == 0  # nothing left to do


def test_logto_out_of_reach_stops_the_sync_at_once(env, tmp_path, capsys):
    env(LOGTO_MANAGEMENT_API_RESOURCE=MGMT)
    job = ReportJob(load_settings(WorkerSettings))
    job.custom_data.endpoint = f"http://127.0.0.1:{free_port()}"  # tokens come, the API is gone
    content = job.run_day(DAY)
    sync = content["custom_data_sync"]
    assert (sync["synced"], sync["failed"]) == (0, 9)
    assert sync["error"].startswith("cannot reach Logto's Management API at http://127.0.0.1:")
    assert "LOGTO_ENDPOINT" in sync["error"]
    assert read_report(tmp_path)["orders"] == 450
    assert PendingSyncs(reports_dir(tmp_path)).count(DAY) == 9


def test_one_users_refusal_keeps_only_that_user_pending(env, management, logto, tmp_path, caplog):
    management.user_faults["user-1"] = Reply(422, {"code": "user.invalid", "message": "no"})
    assert main(["once", "--date", str(DAY)]) == 1
    assert read_report(tmp_path)["custom_data_sync"] == {"synced": 1, "skipped": 7, "failed": 1}
    pending = list(PendingSyncs(reports_dir(tmp_path)).read(DAY))
    assert [customer for customer, _figures in pending] == ["user-1"]
    (refused,) = [r for r in management_calls(logto) if r.path == "/api/users/user-1/custom-data"]
    request_id = refused.headers["x-request-id"]
    assert f"custom data of user user-1 not updated: HTTP 422 (user.invalid; request id {request_id})" in (
        caplog.text
    )


def test_each_management_api_call_carries_its_own_request_id(env, logto):
    assert main(["once", "--date", str(DAY)]) == 0
    calls = management_calls(logto)
    ids = [r.headers.get("x-request-id", "") for r in calls]
    assert [r.method for r in calls].count("PATCH") == 2 and len(calls) == 11  # a GET each, 2 PATCHes
    assert len(set(ids)) == len(calls) and all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


def test_a_later_report_run_retries_an_earlier_days_sync(env, management, shop, tmp_path):
    management.forbidden = True
    assert main(["once", "--date", str(DAY)]) == 1
    management.forbidden = False
    before = read_report(tmp_path)
    assert main(["once", "--date", "2026-11-21"]) == 0
    assert not PendingSyncs(reports_dir(tmp_path)).days()
    assert {r.query["date"] for r in shop.requests} == {"2026-11-20", "2026-11-21"}
    after = read_report(tmp_path)
    assert after["custom_data_sync"] == {"synced": 2, "skipped": 7, "failed": 0}
    assert {k: v for k, v in after.items() if k != "custom_data_sync"} == {
        k: v for k, v in before.items() if k != "custom_data_sync"
    }


def test_the_schedulers_catch_up_retries_only_the_sync(env, management, shop, tmp_path, monkeypatch):
    from stats_worker import scheduler as scheduler_module

    monkeypatch.setattr(scheduler_module, "yesterday", lambda tz: DAY)  # the missed day is DAY
    management.forbidden = True
    assert main(["once", "--date", str(DAY)]) == 1
    management.forbidden = False
    pages_before = len(shop.requests)

    scheduler = DailyScheduler(ReportJob(load_settings(WorkerSettings)))
    scheduler.schedule()
    assert scheduler.scheduler.get_job(JOB_ID) is not None
    assert scheduler.scheduler.get_job(f"catch-up-{DAY}") is None  # the report is there: kept
    catch_up = scheduler.scheduler.get_job(SYNC_CATCH_UP_ID)
    assert catch_up is not None
    assert catch_up.func() is True  # what the scheduler runs at start
    assert len(shop.requests) == pages_before
    assert read_report(tmp_path)["custom_data_sync"] == {"synced": 2, "skipped": 7, "failed": 0}


def test_a_sync_cut_short_has_its_day_built_again_at_start(env, tmp_path, monkeypatch):
    from stats_worker import scheduler as scheduler_module

    monkeypatch.setattr(scheduler_module, "yesterday", lambda tz: DAY)
    reports = reports_dir(tmp_path)
    reports.mkdir()
    # what the file holds between the report's write and the sync's end
    (reports / f"{DAY}.json").write_text(json.dumps({"custom_data_sync": {"pending": 9}}))
    scheduler = DailyScheduler(ReportJob(load_settings(WorkerSettings)))
    scheduler.schedule()
    assert scheduler.scheduler.get_job(f"catch-up-{DAY}") is not None


def run_as_nobody(function) -> str:
    """Run ``function`` in a child process with the uid of ``nobody`` and return what it returns
    (a string). Root ignores directory permissions, so an unwritable directory needs another user."""
    read, write = os.pipe()
    with warnings.catch_warnings():  # Python 3.12+ warns about fork() with threads running; the
        warnings.simplefilter("ignore", DeprecationWarning)  # child only runs ``function``
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read)
        result = "child failed"
        try:
            os.setgid(65534)
            os.setuid(65534)
            result = function()
        except BaseException as exc:
            result = f"{type(exc).__name__}: {exc}"
        finally:
            os.write(write, result.encode())
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as answer:
        result = answer.read().decode()
    os.waitpid(pid, 0)
    return result


def test_an_unwritable_reports_dir_stops_the_run_before_any_token_request(env, logto, shop, tmp_path):
    reports = reports_dir(tmp_path)
    reports.mkdir()
    reports.chmod(0o555)
    tmp_path.chmod(0o755)
    job = ReportJob(load_settings(WorkerSettings))

    def attempt() -> str:
        job.run_day(DAY)
        return "the report was written"

    result = run_as_nobody(attempt) if os.geteuid() == 0 else _call(attempt)
    assert (
        result.startswith("ReportsDirError: REPORTS_DIR ") and "is not writable (Permission denied)" in result
    )
    assert "give the worker's user write access to it" in result
    assert not logto.requests and not shop.requests  # found before any token or page request


def _call(function) -> str:
    try:
        return function()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


def test_run_stops_at_once_when_reports_dir_cannot_be_made(env, logto, tmp_path):
    (tmp_path / "a-file").write_text("")
    values = env(REPORTS_DIR=str(tmp_path / "a-file" / "reports"))
    result = run_script("stats-worker", "run", env=clean_env(**values), cwd=tmp_path)
    assert result.returncode == 1
    assert "a-file/reports is not writable (Not a directory)" in result.stderr
    assert "Traceback" not in result.stderr and not logto.requests
