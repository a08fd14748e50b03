"""Report maths, per-customer tallies and report files."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from zoneinfo import ZoneInfo

import pytest

from stats_worker.customers import CustomerTally
from stats_worker.orders import decode_orders
from stats_worker.report import DailyReport, ReportError, average, hours_of_day, summary
from stats_worker.report_file import STALE_TEMP_SECONDS, render, report_path, write_report

from .expected import expected_customers, expected_report, strip_meta
from .fakes import make_orders


def page(orders) -> bytes:
    return json.dumps({"orders": orders, "next_cursor": None}).encode()


def build(orders, day, tz, page_size=100, customers=None):
    report = DailyReport(day, tz, customers)
    for start in range(0, len(orders), page_size):
        report.add_orders(decode_orders(page(orders[start : start + page_size])))
    return report


@pytest.mark.parametrize(
    ("day", "zone", "hours"),
    [
        (dt.date(2026, 11, 20), "UTC", 24),
        (dt.date(2026, 11, 1), "America/New_York", 25),  # DST ends: 01:00 happens twice
        (dt.date(2026, 3, 29), "Europe/Berlin", 23),  # DST starts: no 02:00
        (dt.date(2026, 11, 20), "Asia/Kolkata", 24),  # +05:30: local hours are not UTC hours
    ],
)
def test_report_matches_figures_computed_independently(day, zone, hours):
    tz = ZoneInfo(zone)
    orders = make_orders(day, tz, 640, customers=37)
    content = build(orders, day, tz).as_dict()

    assert strip_meta(content) == expected_report(orders, day, tz)
    assert len(content["orders_per_hour"]) == hours == len(hours_of_day(day, tz))
    assert sum(h["orders"] for h in content["orders_per_hour"]) == 640
    assert set(content["currencies"]) == {"EUR", "JPY", "USD"}
    assert all(len(top) <= 10 for top in content["top_products_by_revenue"].values())


def test_fall_back_day_keeps_both_one_oclock_hours_apart():
    tz = ZoneInfo("America/New_York")
    day = dt.date(2026, 11, 1)
    first = dt.datetime(2026, 11, 1, 5, 30, tzinfo=dt.UTC)  # 01:30 EDT
    second = dt.datetime(2026, 11, 1, 6, 30, tzinfo=dt.UTC)  # 01:30 EST
    orders = [
        {
            "id": n,
            "customer_id": "c",
            "currency": "USD",
            "total": 100,
            "created_at": t.isoformat(),
            "created_by": "m2m-admin",
            "items": [{"product_id": 1, "sku": "A", "name": "A", "quantity": 1, "unit_price": 100}],
        }
        for n, t in enumerate((first, second, second))
    ]
    hours = {h["hour"]: h["orders"] for h in build(orders, day, tz).as_dict()["orders_per_hour"]}
    assert hours["2026-11-01T01:00:00-04:00"] == 1
    assert hours["2026-11-01T01:00:00-05:00"] == 2


def test_empty_day():
    content = DailyReport(dt.date(2026, 11, 20), ZoneInfo("Europe/Berlin")).as_dict()
    assert (content["orders"], content["units"], content["customers"]) == (0, 0, 0)
    assert content["currencies"] == {} and content["top_products_by_units"] == []
    assert [h["orders"] for h in content["orders_per_hour"]] == [0] * 24
    assert content["orders_per_hour"][0]["hour"] == "2026-11-20T00:00:00+01:00"
    assert "0 orders" in summary(content)


@pytest.mark.parametrize(
    ("total", "count", "expected"),
    [
        (1000, 3, 333),
        (1001, 2, 500),
        (1003, 2, 502),
        (5, 2, 2),
        (7, 2, 4),
        (10**20 + 1, 2, 5 * 10**19),
    ],
)
def test_average_is_exact_and_rounds_half_to_even(total, count, expected):
    assert average(total, count) == expected


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("total", 19.99),
        ("total", "1999"),
        ("total", True),
        ("items", None),
        ("created_at", "yesterday"),
        ("created_at", "2026-11-20T10:00:00"),
        ("customer_id", 7),
        ("currency", None),
    ],
)
def test_malformed_order_is_a_clear_error(field, value):
    order = make_orders(dt.date(2026, 11, 20), ZoneInfo("UTC"), 1)[0] | {"id": 42, field: value}
    with pytest.raises(ReportError, match="order 42 from the API is malformed"):
        DailyReport(dt.date(2026, 11, 20), ZoneInfo("UTC")).add_orders(decode_orders(page([order])))


def test_customer_tally_spills_to_disk_and_gives_the_same_figures(tmp_path):
    orders = make_orders(dt.date(2026, 11, 20), ZoneInfo("UTC"), 500, customers=61)
    with CustomerTally(max_in_memory=5, spill_dir=str(tmp_path)) as small, CustomerTally() as big:
        spilled = build(orders, dt.date(2026, 11, 20), ZoneInfo("UTC"), customers=small)
        in_memory = build(orders, dt.date(2026, 11, 20), ZoneInfo("UTC"), customers=big)
        assert small.spilled and not big.spilled
        assert len(small._memory) <= 5  # the bound holds
        assert list(tmp_path.iterdir())
        assert spilled.as_dict() == in_memory.as_dict()
        assert len(small) == len(big) == 61
        figures = {cid: f.as_dict() for cid, f in small}
        assert figures == {cid: f.as_dict() for cid, f in big} == expected_customers(orders)
        assert list(figures) == sorted(figures)
    assert not list(tmp_path.iterdir())  # the spill file is gone


def test_same_orders_give_byte_identical_files(tmp_path):
    day, tz = dt.date(2026, 11, 20), ZoneInfo("UTC")
    orders = make_orders(day, tz, 300)
    first = write_report(tmp_path, day, build(orders, day, tz, page_size=7).as_dict()).read_bytes()
    second = write_report(tmp_path, day, build(orders, day, tz, page_size=1000).as_dict()).read_bytes()
    assert first == second
    assert json.loads(first)["orders"] == 300
    assert sorted(p.name for p in tmp_path.iterdir()) == ["2026-11-20.json"]
    assert oct(report_path(tmp_path, day).stat().st_mode & 0o777) == "0o644"


def test_failed_write_leaves_the_old_file_and_no_temp(tmp_path):
    day = dt.date(2026, 11, 20)
    path = write_report(tmp_path, day, {"orders": 1})
    with pytest.raises(TypeError):
        write_report(tmp_path, day, {"orders": object()})
    assert path.read_bytes() == render({"orders": 1})
    assert [p.name for p in tmp_path.iterdir()] == ["2026-11-20.json"]


def test_temp_files_left_by_a_dead_worker_are_removed(tmp_path):
    stale = tmp_path / ".2026-11-19.json.abc123.tmp"
    fresh = tmp_path / ".2026-11-18.json.def456.tmp"
    stale.write_text('{"half')
    fresh.write_text('{"half')
    old = time.time() - STALE_TEMP_SECONDS - 10
    os.utime(stale, (old, old))
    write_report(tmp_path, dt.date(2026, 11, 20), {})
    assert not stale.exists() and fresh.exists()


def test_summary_formats_minor_units_per_currency():
    day, tz = dt.date(2026, 11, 20), ZoneInfo("UTC")
    orders = make_orders(day, tz, 30)
    text = summary(build(orders, day, tz).as_dict())
    jpy = sum(o["total"] for o in orders if o["currency"] == "JPY")
    eur = sum(o["total"] for o in orders if o["currency"] == "EUR")
    assert f"{jpy:,} JPY" in text
    assert f"{eur // 100:,}.{eur % 100:02d} EUR" in text
    assert "30 orders" in text
