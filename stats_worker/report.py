"""The daily report: figures computed while the day's orders stream past, page by page.

Memory depends on the catalogue (one entry per product sold) and on the customer bound of
``CustomerTally``, never on the number of orders. Money stays in integer minor units.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from .customers import CustomerTally

if TYPE_CHECKING:
    from .orders import Order

TOP_N = 10
#: ISO 4217 currencies whose minor unit is not 1/100 (for the human summary only).
MINOR_UNIT_DIGITS = {
    **dict.fromkeys(
        (
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "UYI",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ),
        0,
    ),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
}


class ReportError(Exception):
    """The API sent an order the report cannot use; the message names it."""


def average(total: int, count: int) -> int:
    """``total / count`` rounded half-to-even to a whole minor unit."""
    return int((Decimal(total) / count).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def hours_of_day(day: dt.date, tz: ZoneInfo) -> list[dt.datetime]:
    """Start of each local hour of ``day`` (23 or 25 of them on a DST change), in UTC."""
    start = dt.datetime.combine(day, dt.time(), tz).astimezone(dt.UTC)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tz).astimezone(dt.UTC)
    hours = []
    while start < end:
        hours.append(start)
        start += dt.timedelta(hours=1)
    return hours


class DailyReport:
    """Accumulates one day's figures; ``as_dict()`` is the report file's content."""

    def __init__(self, day: dt.date, tz: ZoneInfo, customers: CustomerTally | None = None) -> None:
        self.day = day
        self.tz = tz
        self.customers = customers if customers is not None else CustomerTally()
        # currency -> [orders, revenue, units]
        self.by_currency: dict[str, list[int]] = {}
        # currency -> product id -> [sku, name, units, revenue]
        self.products: dict[str, dict[int, list[Any]]] = {}
        # Orders are counted per minute of created_at (with its offset) and folded into local
        # hours at the end: one dict update per order, and each distinct minute parsed once.
        self._per_minute: dict[str, int] = {}
        self._hour_of_minute: dict[str, dt.datetime] = {}
        self.custom_data_sync: dict[str, int] | None = None

    def add_orders(self, orders: Iterable[Order]) -> None:
        """Tally one page of orders (decoded by ``stats_worker.orders``, so every type is right).

        This is the worker's hot loop (a million orders a day), so it is one function working on
        local names: plain dict and list operations, no call per item.
        """
        shelves, by_currency, per_minute = self.products, self.by_currency, self._per_minute
        tally = self.customers.add
        for order in orders:
            currency, total = order.currency, order.total
            shelf = shelves.get(currency)
            if shelf is None:
                shelf = shelves[currency] = {}
            units = 0
            for item in order.items:
                quantity, revenue = item.quantity, item.quantity * item.unit_price
                units += quantity
                product = shelf.get(item.product_id)
                if product is None:
                    shelf[item.product_id] = [item.sku, item.name, quantity, revenue]  # as first seen
                else:
                    product[2] += quantity
                    product[3] += revenue
            created_at = order.created_at
            minute = created_at[:16] + created_at[-6:]  # "2026-11-20T13:45" + "+00:00"
            count = per_minute.get(minute)
            if count is None:
                self._hour_of_minute[minute] = self._local_hour(order)
                per_minute[minute] = 1
            else:
                per_minute[minute] = count + 1
            tally(order.customer_id, currency, total, units)
            figures = by_currency.get(currency)
            if figures is None:
                by_currency[currency] = [1, total, units]
            else:
                figures[0] += 1
                figures[1] += total
                figures[2] += units

    @property
    def orders(self) -> int:
        return sum(figures[0] for figures in self.by_currency.values())

    @property
    def units(self) -> int:
        return sum(figures[2] for figures in self.by_currency.values())

    def _local_hour(self, order: Order) -> dt.datetime:
        """Start of the local hour the order was created in, as a UTC datetime.

        Kept in UTC because the two local 01:00 hours of a DST fall-back day compare equal as
        local times. Every zone's hours start on a whole minute, so the minute decides the hour.
        """
        try:
            created = dt.datetime.fromisoformat(order.created_at)
        except ValueError:
            created = None
        if created is None or created.tzinfo is None:
            raise ReportError(
                f"order {order.id!r} from the API is malformed (created_at {order.created_at!r} is not"
                " an ISO 8601 time with a UTC offset)"
            )
        return created.astimezone(self.tz).replace(minute=0, second=0, microsecond=0).astimezone(dt.UTC)

    def per_hour(self) -> dict[dt.datetime, int]:
        """Orders per local hour (UTC start of the hour -> count), every hour of the day present."""
        hours = dict.fromkeys(hours_of_day(self.day, self.tz), 0)
        for minute, count in self._per_minute.items():
            hour = self._hour_of_minute[minute]
            hours[hour] = hours.get(hour, 0) + count
        return hours

    def top_by_revenue(self) -> dict[str, list[dict[str, Any]]]:
        ranked = {}
        for currency, shelf in sorted(self.products.items()):
            best = sorted(shelf.items(), key=lambda kv: (-kv[1][3], kv[0]))[:TOP_N]
            ranked[currency] = [
                {"product_id": product_id, "sku": sku, "name": name, "units": units, "revenue": revenue}
                for product_id, (sku, name, units, revenue) in best
            ]
        return ranked

    def top_by_units(self) -> list[dict[str, Any]]:
        units: dict[int, list[Any]] = {}
        for _currency, shelf in sorted(self.products.items()):
            for product_id, (sku, name, sold, _revenue) in shelf.items():
                entry = units.setdefault(product_id, [sku, name, 0])
                entry[2] += sold
        ranked = sorted(units.items(), key=lambda kv: (-kv[1][2], kv[0]))[:TOP_N]
        return [
            {"product_id": pid, "sku": sku, "name": name, "units": sold} for pid, (sku, name, sold) in ranked
        ]

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data: the same orders always give the same dict."""
        return {
            "date": self.day.isoformat(),
            "timezone": self.tz.key,
            "money": "integer amounts in each currency's minor unit (ISO 4217), e.g. 1999 USD = 19.99",
            "orders": self.orders,
            "units": self.units,
            "customers": len(self.customers),
            "currencies": {
                currency: {
                    "orders": orders,
                    "revenue": revenue,
                    "units": units,
                    "average_order_value": average(revenue, orders),
                }
                for currency, (orders, revenue, units) in sorted(self.by_currency.items())
            },
            "top_products_by_revenue": self.top_by_revenue(),
            "top_products_by_units": self.top_by_units(),
            "orders_per_hour": [
                {"hour": hour.astimezone(self.tz).isoformat(), "orders": count}
                for hour, count in sorted(self.per_hour().items())
            ],
            "custom_data_sync": self.custom_data_sync,
        }


def format_money(amount: int, currency: str) -> str:
    digits = MINOR_UNIT_DIGITS.get(currency, 2)
    value = Decimal(amount).scaleb(-digits)
    return f"{value:,.{digits}f} {currency}"


def summary(report: Mapping[str, Any]) -> str:
    """A few lines for people: what the day looked like."""
    lines = [
        f"{report['date']} ({report['timezone']}): {report['orders']:,} orders, "
        f"{report['units']:,} units, {report['customers']:,} customers"
    ]
    for currency, figures in report["currencies"].items():
        lines.append(
            f"  {currency}: revenue {format_money(figures['revenue'], currency)} from "
            f"{figures['orders']:,} orders, average "
            f"{format_money(figures['average_order_value'], currency)}"
        )
    busiest = max(report["orders_per_hour"], key=lambda h: h["orders"], default=None)
    if busiest and busiest["orders"]:
        lines.append(f"  busiest hour: {busiest['hour']} ({busiest['orders']:,} orders)")
    if report["top_products_by_units"]:
        top = report["top_products_by_units"][0]
        lines.append(f"  top product by units: {top['sku']} {top['name']} ({top['units']:,} units)")
    sync = report.get("custom_data_sync")
    if sync is not None:
        lines.append(
            f"  Logto custom data: {sync['synced']} synced, {sync['skipped']} skipped, "
            f"{sync['failed']} failed"
        )
    return "\n".join(lines)
