"""The report's figures computed the plain way, from the whole list of orders at once.

Deliberately written differently from ``stats_worker.report`` (whole-list passes, Counters,
fractions), so the tests compare two independent computations.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo


def _round_half_even(value: Fraction) -> int:
    return round(value)  # Fraction.__round__ rounds half to even


def expected_report(orders: list[dict[str, Any]], day: dt.date, tz: ZoneInfo) -> dict[str, Any]:
    revenue, counts, units_by_cur = Counter(), Counter(), Counter()
    product_units, product_revenue, names = Counter(), Counter(), {}
    for order in orders:
        cur = order["currency"]
        counts[cur] += 1
        revenue[cur] += order["total"]
        for item in order["items"]:
            units_by_cur[cur] += item["quantity"]
            product_units[item["product_id"]] += item["quantity"]
            product_revenue[(cur, item["product_id"])] += item["quantity"] * item["unit_price"]
            names[item["product_id"]] = (item["sku"], item["name"])
    by_revenue: dict[str, list] = defaultdict(list)
    for (cur, pid), rev in sorted(product_revenue.items(), key=lambda kv: (kv[0][0], -kv[1], kv[0][1])):
        if len(by_revenue[cur]) < 10:
            units = sum(
                i["quantity"]
                for o in orders
                if o["currency"] == cur
                for i in o["items"]
                if i["product_id"] == pid
            )
            by_revenue[cur].append(
                {
                    "product_id": pid,
                    "sku": names[pid][0],
                    "name": names[pid][1],
                    "units": units,
                    "revenue": rev,
                }
            )
    by_units = [
        {"product_id": pid, "sku": names[pid][0], "name": names[pid][1], "units": u}
        for pid, u in sorted(product_units.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    ]
    # every local hour of the day, found by walking UTC minutes (slow, obviously right)
    hours: dict[str, int] = {}
    t = dt.datetime.combine(day, dt.time(), tz).astimezone(dt.UTC)
    while t.astimezone(tz).date() == day:
        local = t.astimezone(tz)
        if local.minute == 0:
            hours[local.isoformat()] = 0
        t += dt.timedelta(minutes=1)
    for order in orders:
        local = dt.datetime.fromisoformat(order["created_at"]).astimezone(tz)
        assert local.date() == day, "test data must lie on the day"
        start = local.replace(minute=0, second=0, microsecond=0)
        hours[start.isoformat()] += 1
    return {
        "date": day.isoformat(),
        "timezone": tz.key,
        "orders": len(orders),
        "units": sum(units_by_cur.values()),
        "customers": len({o["customer_id"] for o in orders}),
        "currencies": {
            cur: {
                "orders": counts[cur],
                "revenue": revenue[cur],
                "units": units_by_cur[cur],
                "average_order_value": _round_half_even(Fraction(revenue[cur], counts[cur])),
            }
            for cur in sorted(counts)
        },
        "top_products_by_revenue": dict(by_revenue),
        "top_products_by_units": by_units,
        "orders_per_hour": [{"hour": h, "orders": n} for h, n in hours.items()],
    }


def expected_customers(orders: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    figures: dict[str, dict[str, Any]] = {}
    for order in orders:
        entry = figures.setdefault(order["customer_id"], {"orders": 0, "units": 0, "spent": {}})
        entry["orders"] += 1
        entry["units"] += sum(i["quantity"] for i in order["items"])
        entry["spent"][order["currency"]] = entry["spent"].get(order["currency"], 0) + order["total"]
    return {cid: {**f, "spent": dict(sorted(f["spent"].items()))} for cid, f in figures.items()}


def strip_meta(report: dict[str, Any]) -> dict[str, Any]:
    """The report without the keys ``expected_report`` does not compute."""
    return {k: v for k, v in report.items() if k not in ("money", "custom_data_sync")}
