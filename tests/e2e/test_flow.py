"""End to end: the worker's CLI against the real issuer and gunicorn, checked against the seed.

Order matters in this module: the scheduled worker starts first (its cron fires at the next whole
minute, so the wait overlaps the other tests) and the servers are stopped last.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import signal
import time
from collections import Counter, defaultdict
from fractions import Fraction

import pytest

from tests.support import ServerProcess, script

from .conftest import CATALOG, KNOWN_CUSTOMERS, UNKNOWN_CUSTOMER, WORKER

pytestmark = pytest.mark.slow

SECRETS = (WORKER[1], "admin-local-secret")
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.")


def report_day(stack) -> dt.date:
    return stack.orders[0][2].astimezone(dt.UTC).date()


def day_orders(stack, day):
    """The seeded orders placed on ``day`` (UTC); a seed that straddles midnight splits."""
    return [
        (customer, basket)
        for customer, basket, created in stack.orders
        if created.astimezone(dt.UTC).date() == day
    ]


def expected_report(stack, day) -> dict:
    """The report's figures, computed from the seed alone."""
    orders = day_orders(stack, day)
    currencies: dict[str, dict[str, int]] = defaultdict(lambda: {"orders": 0, "revenue": 0, "units": 0})
    units_by_sku: Counter = Counter()
    revenue_by_sku: Counter = Counter()
    for _customer, basket in orders:
        currency = CATALOG[basket[0][0]][1]
        figures = currencies[currency]
        figures["orders"] += 1
        for sku, qty in basket:
            price, _ = CATALOG[sku]
            figures["revenue"] += qty * price
            figures["units"] += qty
            units_by_sku[sku] += qty
            revenue_by_sku[sku] += qty * price
    for figures in currencies.values():
        # Half-to-even, like money rounding everywhere: round() on an exact fraction does that.
        figures["average_order_value"] = round(Fraction(figures["revenue"], figures["orders"]))
    ids = stack.product_ids
    return {
        "orders": len(orders),
        "units": sum(units_by_sku.values()),
        "customers": len({customer for customer, _ in orders}),
        "currencies": dict(sorted(currencies.items())),
        "top_products_by_units": [
            (sku, units) for sku, units in sorted(units_by_sku.items(), key=lambda kv: (-kv[1], ids[kv[0]]))
        ],
        "top_products_by_revenue": {
            currency: [
                (sku, revenue_by_sku[sku])
                for sku in sorted(
                    (s for s in revenue_by_sku if CATALOG[s][1] == currency),
                    key=lambda s: (-revenue_by_sku[s], ids[s]),
                )
            ]
            for currency in sorted(currencies)
        },
    }


def expected_custom_data(stack, day) -> dict[str, dict]:
    figures: dict[str, dict] = {}
    for customer, basket in day_orders(stack, day):
        entry = figures.setdefault(customer, {"orders": 0, "units": 0, "spent": {}})
        currency = CATALOG[basket[0][0]][1]
        entry["orders"] += 1
        entry["units"] += sum(qty for _, qty in basket)
        entry["spent"][currency] = entry["spent"].get(currency, 0) + sum(
            qty * CATALOG[sku][0] for sku, qty in basket
        )
    return figures


def assert_no_secrets(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text
    assert not JWT.search(text), "an access token reached the output"


# -- the scheduler, started first so that its wait overlaps the rest ------------------------------


@pytest.fixture(scope="module")
def scheduled(stack, tmp_path_factory):
    """``stats-worker run`` with its cron at the next whole minute (cron has no seconds)."""
    reports = tmp_path_factory.mktemp("scheduled-reports")
    now = dt.datetime.now(dt.UTC)
    fire = (now + dt.timedelta(minutes=1)).replace(second=0, microsecond=0)
    if (fire - now).total_seconds() < 5:
        fire += dt.timedelta(minutes=1)  # leave the catch-up time to finish first
    env = stack.worker_env(reports, STATS_CRON=f"{fire.minute} {fire.hour} * * *")
    worker = ServerProcess(
        [script("stats-worker"), "run"],
        env=env,
        cwd=stack.workdir,
        ready_url=None,
        log_path=stack.workdir / "scheduled.log",
    )
    worker.start()
    yield worker, reports, fire
    worker.stop(signal.SIGKILL)  # only if a test failed before stopping it


def wait_for(predicate, timeout: float, what: str, log: ServerProcess) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        assert log.proc.poll() is None, f"the worker exited early:\n{log.log_text()}"
        time.sleep(0.2)
    pytest.fail(f"{what} did not happen within {timeout:.0f}s:\n{log.log_text()}")


def test_run_catches_up_a_missed_yesterday_at_start(scheduled):
    worker, reports, _fire = scheduled
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    path = reports / f"{yesterday}.json"
    wait_for(path.exists, 30, "the catch-up report", worker)
    report = json.loads(path.read_text())
    assert report["date"] == yesterday.isoformat()
    assert report["orders"] == 0  # every seeded order is from today
    assert "catching up" in worker.log_text()


# -- one report, checked against the seed ------------------------------------------------------


@pytest.fixture(scope="module")
def once(stack, tmp_path_factory):
    reports = tmp_path_factory.mktemp("reports")
    day = report_day(stack)
    result = stack.worker("once", "--date", day.isoformat(), reports=reports)
    return result, reports, day


def test_once_exits_zero_and_prints_a_summary(once):
    result, _reports, day = once
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith(f"{day} (UTC): 40 orders")
    assert "Logto custom data: 4 synced, 1 skipped, 0 failed" in result.stdout
    assert_no_secrets(result.stdout + result.stderr)


def test_one_token_serves_every_page(once):
    result, _reports, _day = once
    assert result.stderr.count("got an access token for https://shopping.api") == 1
    assert result.stderr.count("got an access token for https://default.logto.app/api") == 1


def test_report_matches_the_seed(stack, once):
    _result, reports, day = once
    report = json.loads((reports / f"{day}.json").read_text())
    expected = expected_report(stack, day)
    assert report["date"] == day.isoformat() and report["timezone"] == "UTC"
    assert (report["orders"], report["units"], report["customers"]) == (
        expected["orders"],
        expected["units"],
        expected["customers"],
    )
    assert report["currencies"] == expected["currencies"]
    assert [(p["sku"], p["units"]) for p in report["top_products_by_units"]] == expected[
        "top_products_by_units"
    ]
    assert {
        currency: [(p["sku"], p["revenue"]) for p in ranked]
        for currency, ranked in report["top_products_by_revenue"].items()
    } == expected["top_products_by_revenue"]
    assert len(report["orders_per_hour"]) == 24
    assert sum(hour["orders"] for hour in report["orders_per_hour"]) == expected["orders"]
    assert report["custom_data_sync"] == {"synced": len(KNOWN_CUSTOMERS), "skipped": 1, "failed": 0}


def test_custom_data_reached_the_issuers_users(stack, once):
    _result, _reports, day = once
    expected = expected_custom_data(stack, day)
    for customer in KNOWN_CUSTOMERS:
        response = stack.management_get(f"/api/users/{customer}/custom-data")
        assert response.status_code == 200, response.text
        assert response.json()["shopping"]["days"][day.isoformat()] == expected[customer]
    assert stack.management_get(f"/api/users/{UNKNOWN_CUSTOMER}/custom-data").status_code == 404


def test_the_same_day_again_changes_nothing(stack, once, tmp_path):
    _result, reports, day = once
    first = (reports / f"{day}.json").read_bytes()
    before = stack.management_get("/api/users/user-alice/custom-data").json()
    again = stack.worker("once", "--date", day.isoformat(), reports=reports)
    assert again.returncode == 0, again.stderr
    assert (reports / f"{day}.json").read_bytes() == first
    assert stack.management_get("/api/users/user-alice/custom-data").json() == before
    # no temporary file left behind (.status/ holds the last-run records of `stats-worker status`)
    assert sorted(p.name for p in reports.iterdir()) == [".status", f"{day}.json"]


def test_a_day_without_orders(stack, tmp_path):
    result = stack.worker("once", "--date", "2001-02-03", reports=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "2001-02-03.json").read_text())
    assert (report["orders"], report["customers"], report["currencies"]) == (0, 0, {})


# -- the scheduled run, then a clean shutdown of everything ----------------------------------------


def test_run_fires_on_schedule_and_stops_cleanly_on_sigterm(scheduled):
    worker, _reports, fire = scheduled
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    built = f"report for {yesterday} written"
    seconds_left = (fire - dt.datetime.now(dt.UTC)).total_seconds()
    # Once at start (catch-up), once more when the cron fires.
    wait_for(
        lambda: worker.log_text().count(built) >= 2,
        max(seconds_left, 0) + 30,
        f"the run scheduled at {fire:%H:%M} UTC",
        worker,
    )
    assert worker.stop(signal.SIGTERM) == 0
    log = worker.log_text()
    assert "stats worker stopped" in log
    assert_no_secrets(log)


def test_servers_exit_cleanly(stack):
    assert stack.api.stop(signal.SIGTERM) == 0, stack.api.log_text()
    assert stack.issuer.stop(signal.SIGTERM) == 0, stack.issuer.log_text()
    assert_no_secrets(stack.api.log_text() + stack.issuer.log_text())
