"""The worker end to end: real ``local-issuer``, the shopping API under real gunicorn on a seeded
SQLite database, and ``stats-worker`` as a real subprocess. Reports are checked against figures
computed here straight from the database rows."""

from __future__ import annotations

import datetime as dt
import io
import json
import signal
import subprocess
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

import local_issuer
from logto_m2m.logto import OSS_MANAGEMENT_API_RESOURCE
from logto_m2m.settings import load_settings
from stats_worker.config import WorkerSettings
from stats_worker.job import ReportJob
from stats_worker.token_client import TokenClient
from tests.support import ServerProcess, run_script, script

from .expected import expected_customers, expected_report, strip_meta
from .fakes import FakeServer, Forward
from .stack import APP_ID, DAY1, NAMED, SECRET, TODAY, start_stack

pytestmark = pytest.mark.slow


def worker(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return run_script("stats-worker", *args, env=env, timeout=timeout)


def assert_no_secrets(text: str) -> None:
    assert SECRET not in text
    assert "eyJ" not in text  # no JWT (header or payload) in any form


def test_report_for_a_new_york_day_matches_the_database(stack):
    tz = ZoneInfo("America/New_York")
    env = stack.env(STATS_TIMEZONE="America/New_York", STATS_PAGE_SIZE="100")
    before = stack.token_requests()
    result = worker(env, "once", "--date", str(DAY1))

    assert result.returncode == 0, result.stderr
    expected = expected_report(stack.orders_on(DAY1, tz), DAY1, tz)
    path = Path(env["REPORTS_DIR"]) / f"{DAY1}.json"
    report = json.loads(path.read_text())
    assert strip_meta(report) == expected
    assert expected["orders"] > 2000 and len(expected["currencies"]) == 4  # many pages, both UTC days
    assert report["custom_data_sync"] is None
    assert stack.token_requests() - before == 1  # ~27 pages, one token
    assert f"{expected['orders']:,} orders" in result.stdout
    assert_no_secrets(result.stdout + result.stderr)

    first = path.read_bytes()
    again = worker(env, "once", "--date", str(DAY1))
    assert again.returncode == 0 and path.read_bytes() == first  # same day twice: same file
    assert sorted(p.name for p in path.parent.iterdir()) == [".status", path.name]


def test_a_day_without_orders(stack):
    env = stack.env(STATS_TIMEZONE="Europe/Berlin")
    day = DAY1 - dt.timedelta(days=30)
    result = worker(env, "once", "--date", str(day))
    assert result.returncode == 0, result.stderr
    report = json.loads((Path(env["REPORTS_DIR"]) / f"{day}.json").read_text())
    assert (report["orders"], report["customers"], report["currencies"]) == (0, 0, {})
    assert len(report["orders_per_hour"]) == 24


def management_custom_data(stack, user: str) -> dict:
    import requests

    token = TokenClient(stack.issuer_url + "/oidc/token", APP_ID, SECRET).get_token(
        OSS_MANAGEMENT_API_RESOURCE, "all"
    )
    response = requests.get(
        f"{stack.issuer_url}/api/users/{user}/custom-data",
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )
    response.raise_for_status()
    return response.json()


def test_custom_data_sync_writes_each_known_customer_once_per_day(stack):
    tz = ZoneInfo("UTC")
    env = stack.env(LOGTO_MANAGEMENT_API_RESOURCE=OSS_MANAGEMENT_API_RESOURCE)
    orders = stack.orders_on(DAY1, tz)
    customers = expected_customers(orders)
    assert set(NAMED) <= set(customers)

    for _run in range(2):  # the second run rewrites the same day's entry: nothing doubles
        result = worker(env, "once")  # default: yesterday in STATS_TIMEZONE
        assert result.returncode == 0, result.stderr
        report = json.loads((Path(env["REPORTS_DIR"]) / f"{DAY1}.json").read_text())
        assert report["custom_data_sync"] == {"synced": 4, "skipped": len(customers) - 4, "failed": 0}
        for user in NAMED:
            days = management_custom_data(stack, user)["shopping"]["days"]
            assert days == {str(DAY1): customers[user]}
    assert "user-000005 is not in Logto; skipped" in result.stderr
    assert "Logto custom data: 4 synced" in result.stdout
    assert_no_secrets(result.stdout + result.stderr)


def test_worker_killed_mid_report_then_rerun_writes_the_correct_file(stack):
    env = stack.env(STATS_PAGE_SIZE="10")
    reports = Path(env["REPORTS_DIR"])
    process = subprocess.Popen(
        [script("stats-worker"), "once", "--date", str(DAY1)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    for line in process.stderr:  # wait until it is fetching
        if "building the report" in line or time.monotonic() > deadline:
            break
    time.sleep(0.5)
    assert process.poll() is None, "the run ended before it could be killed"
    process.kill()
    process.wait()
    process.stderr.close()
    # no report, not even a partial one (only the record of the run that started)
    assert not reports.exists() or [p.name for p in reports.iterdir()] == [".status"]

    result = worker(env, "once", "--date", str(DAY1))
    assert result.returncode == 0, result.stderr
    report = json.loads((reports / f"{DAY1}.json").read_text())
    assert strip_meta(report) == expected_report(
        stack.orders_on(DAY1, ZoneInfo("UTC")), DAY1, ZoneInfo("UTC")
    )
    assert sorted(p.name for p in reports.iterdir()) == [".status", f"{DAY1}.json"]


def test_run_catches_up_yesterday_and_sigterm_waits_for_the_report(stack):
    env = stack.env(STATS_CRON="0 0 1 1 *", STATS_PAGE_SIZE="10")
    reports = Path(env["REPORTS_DIR"])
    log_path = stack.root / "run.log"
    process = ServerProcess(
        [script("stats-worker"), "run"], env=env, ready_url=None, cwd=stack.root, log_path=log_path
    ).start()
    deadline = time.monotonic() + 20
    while "building the report for" not in process.log_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.proc.poll() is None
    code = process.stop(signal.SIGTERM, timeout=60)

    log = process.log_text()
    assert code == 0, log
    assert f"no report for {DAY1} yet: catching up now" in log
    assert "SIGTERM received: stopping" in log and "stats worker stopped" in log
    assert log.index("waiting for the report in progress") < log.index(f"report for {DAY1} written")
    report = json.loads((reports / f"{DAY1}.json").read_text())  # finished, not cut in half
    assert strip_meta(report) == expected_report(
        stack.orders_on(DAY1, ZoneInfo("UTC")), DAY1, ZoneInfo("UTC")
    )
    assert_no_secrets(log)


def test_expired_token_is_replaced_and_the_new_request_names_resource_and_scope(tmp_path_factory):
    root = tmp_path_factory.mktemp("short-ttl")
    config = yaml.safe_load((Path(local_issuer.__file__).parent / "default.yaml").read_text())
    for resource in config["resources"]:
        resource["accessTokenTtl"] = 2
    (root / "issuer.yaml").write_text(yaml.safe_dump(config))
    stack, processes = start_stack(root, root / "issuer.yaml")
    try:
        with FakeServer(Forward(stack.issuer_url)) as recorder:
            settings = load_settings(
                WorkerSettings,
                env_file=None,
                logto_endpoint=recorder.url,
                logto_app_id=APP_ID,
                logto_app_secret=SECRET,
                shopping_api_url=stack.api_url,
                reports_dir=root / "reports",
            )
            job = ReportJob(settings, out=io.StringIO())
            first = job.run_day(DAY1)
            time.sleep(2.0)  # the token (2 s, refreshed 0.2 s early) has run out
            second = job.run_day(TODAY)
        utc = ZoneInfo("UTC")
        assert strip_meta(first) == expected_report(stack.orders_on(DAY1, utc), DAY1, utc)
        assert strip_meta(second) == expected_report(stack.orders_on(TODAY, utc), TODAY, utc)
        sent = [r.form for r in recorder.requests if r.path == "/oidc/token"]
        assert len(sent) >= 2  # the first token expired during the pause (more if a run was slow)
        assert all(
            form
            == {
                "grant_type": "client_credentials",
                "resource": "https://shopping.api",
                "scope": "read:orders read:products",
            }
            for form in sent
        )
    finally:
        for process in processes:
            process.stop()
