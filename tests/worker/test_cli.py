"""``stats-worker`` commands, settings, custom-data sync and the scheduler, against fake servers."""

from __future__ import annotations

import datetime as dt
import json
import logging
import signal
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger

from logto_m2m.settings import SettingsError, load_settings
from stats_worker.cli import main
from stats_worker.config import WorkerSettings
from stats_worker.cron import cron_trigger
from stats_worker.job import ReportJob, yesterday
from stats_worker.scheduler import JOB_ID, JOB_OPTIONS, MISFIRE_GRACE_SECONDS, DailyScheduler
from tests.support import ServerProcess, clean_env, run_script, script

from .conftest import SECRET
from .expected import expected_customers, expected_report, strip_meta
from .fakes import MGMT, FakeServer, ManagementApi, OrdersApi, Reply, make_orders

DAY = dt.date(2026, 11, 20)


@pytest.fixture
def orders():
    return make_orders(DAY, ZoneInfo("Europe/Berlin"), 450, customers=9)


@pytest.fixture
def shop(token_endpoint, orders):
    with FakeServer(OrdersApi(token_endpoint, orders)) as server:
        yield server


@pytest.fixture
def env(worker_env, shop):
    worker_env(SHOPPING_API_URL=shop.url, STATS_TIMEZONE="Europe/Berlin", STATS_PAGE_SIZE="100")
    return worker_env


def read_report(day=DAY) -> dict:
    return json.loads((Path("reports") / f"{day}.json").read_text())


def test_once_writes_the_report_and_prints_a_summary(env, orders, logto, capsys, caplog, tmp_path):
    env(REPORTS_DIR="reports")
    assert main(["once", "--date", str(DAY)]) == 0

    tz = ZoneInfo("Europe/Berlin")
    assert strip_meta(read_report()) == expected_report(orders, DAY, tz)
    out = capsys.readouterr()
    assert "450 orders" in out.out and "reports/2026-11-20.json" in out.out
    assert logto.count("/oidc/token") == 1  # five pages, one token
    text = out.out + out.err + caplog.text
    assert SECRET not in text and "tok-" not in text


def test_backfill_reports_each_day(env, shop):
    env(REPORTS_DIR="reports")
    assert main(["backfill", "--from", "2026-11-18", "--to", "2026-11-20"]) == 0
    assert sorted(p.name for p in Path("reports").iterdir()) == [
        ".status",
        "2026-11-18.json",
        "2026-11-19.json",
        "2026-11-20.json",
    ]
    assert {r.query["date"] for r in shop.requests} == {"2026-11-18", "2026-11-19", "2026-11-20"}


@pytest.mark.parametrize(
    "argv",
    [
        ["once", "--date", "2026-13-01"],
        ["once", "--date", "20261120"],
        ["backfill", "--from", "2026-11-20"],
        ["nonsense"],
        [],
    ],
)
def test_bad_command_lines_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "usage: stats-worker" in capsys.readouterr().err


def test_backfill_backwards_exits_2(env, capsys):
    assert main(["backfill", "--from", "2026-11-20", "--to", "2026-11-19"]) == 2
    assert "--from must not be after --to" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("LOGTO_APP_SECRET", "", "LOGTO_APP_SECRET: is required but empty"),
        ("LOGTO_APP_ID", "", "LOGTO_APP_ID:"),
        ("STATS_CRON", "5 0 * *", "STATS_CRON: must be a 5-field crontab expression"),
        ("STATS_CRON", "61 0 * * *", "STATS_CRON: must be a 5-field crontab expression"),
        ("STATS_CRON", "0 1 1 * 1", "STATS_CRON: must be a 5-field crontab expression (restrict the day"),
        ("STATS_CRON", "0 0 30 2 *", "STATS_CRON: never fires"),
        ("STATS_CRON", "0 1 * * 8", "STATS_CRON: must be a 5-field crontab expression (day of week '8'"),
        ("STATS_TIMEZONE", "Europe/Atlantis", "STATS_TIMEZONE: must be an IANA time zone name"),
        ("STATS_TIMEZONE", "../../etc/passwd", "STATS_TIMEZONE: must be an IANA time zone name"),
        ("LOGTO_ENDPOINT", "127.0.0.1:3001", "LOGTO_ENDPOINT: must be an http:// or https:// URL"),
        ("SHOPPING_API_URL", "http://", "SHOPPING_API_URL: must be an http:// or https:// URL"),
        ("SHOPPING_API_RESOURCE", "shopping api", "SHOPPING_API_RESOURCE: must be the API identifier"),
        (
            "LOGTO_MANAGEMENT_API_RESOURCE",
            "https://default.logto.app/api#x",
            "LOGTO_MANAGEMENT_API_RESOURCE:",
        ),
        ("STATS_SCOPES", "read:products", "STATS_SCOPES: must include read:orders"),
        ("STATS_SCOPES", 'read:orders "quoted"', "STATS_SCOPES: must be space-separated scope names"),
        ("STATS_PAGE_SIZE", "5000", "STATS_PAGE_SIZE:"),
    ],
)
def test_bad_settings_stop_with_one_line_naming_the_setting(env, capsys, name, value, message):
    env(**{name: value})
    assert main(["once"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("stats-worker: configuration error: ")
    assert message in err
    assert SECRET not in err


def test_missing_credentials_are_named(monkeypatch, capsys):
    assert main(["once"]) == 2
    assert capsys.readouterr().err == (
        "stats-worker: configuration error: LOGTO_APP_ID: is required but "
        "not set; LOGTO_APP_SECRET: is required but not set\n"
    )


def test_settings_defaults_and_derived_values():
    settings = load_settings(
        WorkerSettings,
        env_file=None,
        logto_app_id="a",
        logto_app_secret="hush-123",
        logto_endpoint="https://tenant.logto.app/",
        stats_scopes="read:orders read:orders x",
    )
    assert settings.token_endpoint == "https://tenant.logto.app/oidc/token"
    assert settings.stats_scopes == ("read:orders", "x")
    assert (settings.stats_cron, settings.stats_timezone, settings.shopping_api_resource) == (
        "5 0 * * *",
        "UTC",
        "https://shopping.api",
    )
    assert settings.logto_management_api_resource is None
    assert "hush-123" not in repr(settings) + str(settings.model_dump())
    with pytest.raises(SettingsError, match="LOGTO_APP_SECRET"):
        load_settings(WorkerSettings, env_file=None, logto_app_id="a")


@pytest.mark.parametrize("value", [7, None, {"read:orders": 1}])
def test_scopes_given_in_code_as_neither_text_nor_a_list_are_named(value):
    # Values passed to load_settings() in code skip the environment's string parsing.
    with pytest.raises(SettingsError, match=r"^STATS_SCOPES: must include read:orders"):
        load_settings(
            WorkerSettings, env_file=None, logto_app_id="a", logto_app_secret="s", stats_scopes=value
        )
    # A list (or tuple) of names is taken as given.
    settings = load_settings(
        WorkerSettings, env_file=None, logto_app_id="a", logto_app_secret="s", stats_scopes=["read:orders"]
    )
    assert settings.stats_scopes == ("read:orders",)


def test_settings_come_from_dot_env(monkeypatch, tmp_path):
    Path(".env").write_text("LOGTO_APP_ID=from-file\nLOGTO_APP_SECRET=x\nSTATS_TIMEZONE=Asia/Tokyo\n")
    settings = load_settings(WorkerSettings)
    assert (settings.logto_app_id, settings.stats_timezone) == ("from-file", "Asia/Tokyo")


def test_failed_day_exits_1_leaves_no_file_and_keeps_the_old_one(env, shop, capsys, caplog):
    env(REPORTS_DIR="reports", STATS_HTTP_RETRIES="1")
    assert main(["once", "--date", str(DAY)]) == 0
    before = Path("reports", f"{DAY}.json").read_bytes()
    shop.handler = lambda request: Reply(500, {"error": "server_error"})
    assert main(["once", "--date", str(DAY)]) == 1
    assert main(["once", "--date", "2026-11-21"]) == 1
    assert "report for 2026-11-21 failed: GET /orders answered HTTP 500" in caplog.text
    assert Path("reports", f"{DAY}.json").read_bytes() == before
    assert sorted(p.name for p in Path("reports").iterdir()) == [".status", f"{DAY}.json"]


def test_token_refusal_is_one_clear_error(env, caplog):
    env(LOGTO_APP_SECRET="wrong")
    assert main(["once", "--date", str(DAY)]) == 1
    (error,) = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert "invalid_client (client authentication failed)" in error and "LOGTO_APP_SECRET" in error
    assert "wrong" not in error


def test_custom_data_sync_counts_synced_skipped_and_is_idempotent(env, token_endpoint, orders, logto):
    users = {
        "user-1": {"nickname": "kept"},
        "user-2": {"shopping": {"days": {"2026-11-19": {"orders": 1}}, "note": "kept"}},
    }
    with FakeServer(ManagementApi(token_endpoint, users)) as mgmt:
        env(REPORTS_DIR="reports", LOGTO_MANAGEMENT_API_RESOURCE=MGMT, LOGTO_ENDPOINT=logto.url)
        # the fake Management API lives on its own server: point the worker's sync at it
        settings = load_settings(WorkerSettings, logto_endpoint=logto.url)
        job = ReportJob(settings)
        job.custom_data.endpoint = mgmt.url
        first = job.run_day(DAY)
        snapshot = json.loads(json.dumps(users))
        second = job.run_day(DAY)

    assert first["custom_data_sync"] == second["custom_data_sync"] == {"synced": 2, "skipped": 7, "failed": 0}
    assert users == snapshot  # the re-run rewrote the same entries
    figures = expected_customers(orders)
    assert users["user-1"] == {"nickname": "kept", "shopping": {"days": {str(DAY): figures["user-1"]}}}
    assert users["user-2"]["shopping"] == {
        "note": "kept",
        "days": {"2026-11-19": {"orders": 1}, str(DAY): figures["user-2"]},
    }
    assert [r.form["resource"] for r in logto.requests] == ["https://shopping.api", MGMT]
    assert logto.requests[1].form["scope"] == "all"


def test_a_day_older_than_the_kept_window_is_skipped_not_written(env, token_endpoint, logto):
    newer = {(DAY + dt.timedelta(days=n)).isoformat(): {"orders": n} for n in range(1, 32)}
    users = {f"user-{n}": {"shopping": {"days": dict(newer)}} for n in range(9)}
    with FakeServer(ManagementApi(token_endpoint, users)) as mgmt:
        env(REPORTS_DIR="reports")
        job = ReportJob(load_settings(WorkerSettings, logto_management_api_resource=MGMT))
        job.custom_data.endpoint = mgmt.url
        content = job.run_day(DAY)  # 31 newer days are kept already: DAY would be dropped at once
    assert content["custom_data_sync"] == {"synced": 0, "skipped": 9, "failed": 0}
    assert not [r for r in mgmt.requests if r.method == "PATCH"]
    assert all(user["shopping"]["days"] == newer for user in users.values())


def test_jobs_on_one_reports_dir_take_turns(env, shop):
    """``once`` beside ``run``: the second job waits for the first (the sync reads, then writes)."""
    import threading

    from stats_worker.report_file import reports_lock

    env(REPORTS_DIR="reports")
    job = ReportJob(load_settings(WorkerSettings))
    with reports_lock(Path("reports")):  # another process's job, as far as the kernel is concerned
        worker = threading.Thread(target=job.run_day, args=(DAY,))
        worker.start()
        time.sleep(0.5)
        assert not shop.requests and not Path("reports", f"{DAY}.json").exists()
    worker.join(30)
    assert shop.requests and Path("reports", f"{DAY}.json").exists()


def test_management_api_refusal_stops_the_sync_and_fails_the_run(env, token_endpoint, logto, caplog):
    api = ManagementApi(token_endpoint, {f"user-{n}": {} for n in range(9)})
    api.forbidden = True
    with FakeServer(api) as mgmt:
        settings = load_settings(WorkerSettings, logto_management_api_resource=MGMT, reports_dir=Path("r"))
        job = ReportJob(settings)
        job.custom_data.endpoint = mgmt.url
        content = job.run_day(DAY)
    sync = content["custom_data_sync"]
    assert (sync["synced"], sync["skipped"], sync["failed"]) == (0, 0, 9)
    assert "Management API permission 'all'" in sync["error"]
    assert len(mgmt.requests) <= 2 * job.custom_data.concurrency * 4  # it stopped asking
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 2  # why it stopped (once, with a request id), and what is left pending
    assert "sync stopped" in errors[0] and "(request id " in errors[0]
    assert "9 customer(s) kept pending" in errors[1] and "`stats-worker sync`" in errors[1]


def test_unknown_users_are_named_up_to_ten_then_counted(worker_env, token_endpoint, caplog):
    orders = make_orders(DAY, ZoneInfo("UTC"), 60, customers=15)
    with (
        FakeServer(OrdersApi(token_endpoint, orders)) as shop,
        FakeServer(ManagementApi(token_endpoint, {})) as mgmt,
    ):
        worker_env(SHOPPING_API_URL=shop.url, REPORTS_DIR="reports")
        job = ReportJob(load_settings(WorkerSettings, logto_management_api_resource=MGMT))
        job.custom_data.endpoint = mgmt.url
        with caplog.at_level(logging.INFO, logger="stats_worker"):
            content = job.run_day(DAY)
    assert content["custom_data_sync"] == {"synced": 0, "skipped": 15, "failed": 0}
    assert caplog.text.count("is not in Logto; skipped") == 10
    assert "... and 5 more customers not in Logto; skipped" in caplog.text
    assert len(mgmt.requests) == 15  # a GET each, no PATCH for an unknown user


class WithCatalogCheck(DailyScheduler):
    """The scheduler after following the README's "Add a job" recipe: one more cron job."""

    def schedule(self) -> CronTrigger:
        trigger = super().schedule()
        self.scheduler.add_job(
            lambda: None,
            cron_trigger("0 * * * *", self.tz),
            id="catalog-check",
            replace_existing=True,
            **JOB_OPTIONS,
        )
        return trigger


@pytest.mark.parametrize("scheduler_class", [DailyScheduler, WithCatalogCheck])
def test_scheduler_job_settings_and_catch_up(env, scheduler_class):
    settings = load_settings(
        WorkerSettings, reports_dir=Path("reports"), stats_cron="15 2 * * 1-5", stats_timezone="Europe/Berlin"
    )
    scheduler = scheduler_class(ReportJob(settings))
    trigger = scheduler.schedule()
    job = scheduler.scheduler.get_job(JOB_ID)
    assert job.func == scheduler.report and job.args == ()
    assert job.trigger is trigger and str(trigger.timezone) == "Europe/Berlin"
    assert (job.coalesce, job.max_instances, job.misfire_grace_time) == (True, 1, MISFIRE_GRACE_SECONDS)
    assert MISFIRE_GRACE_SECONDS >= 3600
    fire = trigger.get_next_fire_time(None, dt.datetime(2026, 11, 20, 12, tzinfo=ZoneInfo("Europe/Berlin")))
    assert fire.isoformat() == "2026-11-23T02:15:00+01:00"  # Friday noon -> Monday 02:15 (crontab 1 = Monday)
    missed = yesterday(ZoneInfo("Europe/Berlin"))
    catch_up = scheduler.scheduler.get_job(f"catch-up-{missed}")
    assert catch_up.func == scheduler.report and catch_up.args == (missed,)
    assert isinstance(catch_up.trigger, DateTrigger)  # once, now

    def catch_ups(scheduler: DailyScheduler) -> list[str]:
        return [j.id for j in scheduler.scheduler.get_jobs() if j.id.startswith("catch-up")]

    Path("reports").mkdir()
    Path("reports", f"{missed}.json").write_text("{}")
    again = scheduler_class(ReportJob(settings))
    again.schedule()
    assert again.scheduler.get_job(JOB_ID) is not None and catch_ups(again) == []  # nothing to catch up

    # A report whose custom-data sync left failures, with nothing pending to retry them from, is
    # built again at start.
    Path("reports", f"{missed}.json").write_text(
        json.dumps({"custom_data_sync": {"synced": 5, "skipped": 0, "failed": 2}})
    )
    retry = scheduler_class(ReportJob(settings))
    retry.schedule()
    assert catch_ups(retry) == [f"catch-up-{missed}"]


def test_a_failed_day_does_not_stop_the_scheduler(env, shop, caplog):
    settings = load_settings(WorkerSettings, reports_dir=Path("reports"))
    scheduler = DailyScheduler(ReportJob(settings))
    good = shop.handler
    shop.handler = lambda request: Reply(503, {"error": "unavailable"})
    assert scheduler.report(DAY) is False
    assert "report for 2026-11-20 failed" in caplog.text and "keeps running" in caplog.text
    shop.handler = good
    assert scheduler.report(DAY) is True
    assert read_report()["orders"] == 450


def test_yesterday_is_counted_in_the_configured_zone():
    now = dt.datetime(2026, 11, 21, 2, 0, tzinfo=dt.UTC)
    assert yesterday(ZoneInfo("UTC"), now) == dt.date(2026, 11, 20)
    assert yesterday(ZoneInfo("America/Los_Angeles"), now) == dt.date(2026, 11, 19)
    assert yesterday(ZoneInfo("Pacific/Kiritimati"), now) == dt.date(2026, 11, 20)


def test_run_survives_a_failed_catch_up_and_stops_on_sigint(worker_env, logto, tmp_path):
    with FakeServer(lambda request: Reply(503, {"error": "unavailable"})) as broken:
        values = worker_env(
            SHOPPING_API_URL=broken.url,
            STATS_CRON="*/30 * * * *",
            STATS_TIMEZONE="Asia/Tokyo",
            STATS_HTTP_RETRIES="0",
        )
        process = ServerProcess(
            [script("stats-worker"), "run"],
            env=clean_env(**values),
            ready_url=None,
            cwd=tmp_path,
            log_path=tmp_path / "run.log",
        ).start()
        deadline = time.monotonic() + 20
        while "failed" not in process.log_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        assert process.proc.poll() is None  # still scheduled for the next run
        code = process.stop(signal.SIGINT)
    log = process.log_text()
    assert code == 0, log
    day = yesterday(ZoneInfo("Asia/Tokyo"))
    assert f"report for {day} failed: GET /orders answered HTTP 503" in log
    assert "(the scheduler keeps running)" in log and "SIGINT received: stopping" in log
    assert "cron '*/30 * * * *' in Asia/Tokyo, next report at" in log
    assert [p.name for p in Path(values["REPORTS_DIR"]).iterdir()] == [".status"]  # no report
    # The healthcheck, a process of its own, sees the failed catch-up and the scheduler's start.
    health = run_script("stats-worker", "status", env=clean_env(**values), cwd=tmp_path)
    assert health.returncode == 1, health.stdout + health.stderr
    assert f"report    failed   day {day}" in health.stdout and "scheduler started " in health.stdout
    assert f"unhealthy: the last report (for {day}) failed" in health.stdout
    assert SECRET not in log and "tok-" not in log
    assert JOB_ID == "daily-report"


@pytest.mark.parametrize(
    ("expression", "fires"),
    [
        # from Friday 2026-11-20 12:00 Berlin: the next five runs, as crontab(5) means them
        ("15 2 * * 1-5", ["23T02:15", "24T02:15", "25T02:15", "26T02:15", "27T02:15"]),
        ("0 6 * * 0", ["22T06:00", "29T06:00", "06T06:00", "13T06:00", "20T06:00"]),
        ("0 6 * * 7", ["22T06:00", "29T06:00", "06T06:00", "13T06:00", "20T06:00"]),
        ("0 6 * * sat,sun", ["21T06:00", "22T06:00", "28T06:00", "29T06:00", "05T06:00"]),
        ("0 6 * * 5-7", ["21T06:00", "22T06:00", "27T06:00", "28T06:00", "29T06:00"]),
        ("5 0 * * *", ["21T00:05", "22T00:05", "23T00:05", "24T00:05", "25T00:05"]),
        ("30 23 1 * *", ["01T23:30", "01T23:30", "01T23:30", "01T23:30", "01T23:30"]),
    ],
)
def test_cron_follows_crontab_weekdays(expression, fires):
    from stats_worker.cron import cron_trigger

    tz = ZoneInfo("Europe/Berlin")
    trigger, now, seen = cron_trigger(expression, tz), dt.datetime(2026, 11, 20, 12, tzinfo=tz), []
    for _ in range(5):
        now = trigger.get_next_fire_time(None, now + dt.timedelta(seconds=1))
        seen.append(now.strftime("%dT%H:%M"))
    assert seen == fires


def test_sync_with_nothing_pending_says_so(env, shop, logto, capsys):
    env(REPORTS_DIR="reports")
    assert main(["sync"]) == 0
    assert capsys.readouterr().out == "no custom data is pending: nothing to sync\n"
    assert not shop.requests and logto.count("/oidc/token") == 0  # nothing was asked of anyone
