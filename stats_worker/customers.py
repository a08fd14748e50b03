"""Per-customer figures for one day, with memory bounded however many customers there are.

Orders arrive sorted by time, not by customer, so every customer seen so far must be remembered
until the day is done (for the distinct count and the custom-data sync). Figures are kept in a
dict until it holds ``max_in_memory`` customers (default 50,000, about 20 MB); then the dict is
merged into a temporary SQLite file and emptied (external aggregation, as databases do for big
GROUP BYs). Memory therefore stays below that bound; a day with fewer customers never touches disk.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field

DEFAULT_MAX_IN_MEMORY = 50_000


@dataclass
class CustomerFigures:
    """What one customer did on one day. Money in minor units per currency."""

    orders: int = 0
    units: int = 0
    spent: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"orders": self.orders, "units": self.units, "spent": dict(sorted(self.spent.items()))}


class CustomerTally:
    """Counts orders, units and money per customer; spills to a temporary SQLite file when large."""

    def __init__(self, max_in_memory: int = DEFAULT_MAX_IN_MEMORY, spill_dir: str | None = None) -> None:
        self.max_in_memory = max_in_memory
        self.spill_dir = spill_dir
        # customer id -> currency -> [orders, units, total]
        self._memory: dict[str, dict[str, list[int]]] = {}
        self._db: sqlite3.Connection | None = None
        self._db_path: str | None = None

    @property
    def spilled(self) -> bool:
        return self._db is not None

    def add(self, customer_id: str, currency: str, total: int, units: int) -> None:
        per_currency = self._memory.get(customer_id)
        if per_currency is None:
            if len(self._memory) >= self.max_in_memory:
                self._spill()
            per_currency = self._memory[customer_id] = {}
        figures = per_currency.get(currency)
        if figures is None:
            per_currency[currency] = [1, units, total]
        else:
            figures[0] += 1
            figures[1] += units
            figures[2] += total

    def __len__(self) -> int:
        """Distinct customers seen."""
        if self._db is None:
            return len(self._memory)
        self._spill()
        return self._db.execute("SELECT COUNT(DISTINCT customer_id) FROM figures").fetchone()[0]

    def __iter__(self) -> Iterator[tuple[str, CustomerFigures]]:
        """Each customer's figures, in customer-id order."""
        if self._db is None:
            for customer_id in sorted(self._memory):
                yield customer_id, self._figures(self._memory[customer_id].items())
            return
        self._spill()
        rows = self._db.execute(
            "SELECT customer_id, currency, orders, units, total FROM figures ORDER BY customer_id, currency")
        current: str | None = None
        group: list[tuple[str, list[int]]] = []
        for customer_id, currency, orders, units, total in rows:
            if customer_id != current and current is not None:
                yield current, self._figures(group)
                group = []
            current = customer_id
            group.append((currency, [orders, units, total]))
        if current is not None:
            yield current, self._figures(group)

    @staticmethod
    def _figures(per_currency) -> CustomerFigures:
        figures = CustomerFigures()
        for currency, (orders, units, total) in per_currency:
            figures.orders += orders
            figures.units += units
            figures.spent[currency] = total
        return figures

    def _spill(self) -> None:
        if self._db is None:
            fd, self._db_path = tempfile.mkstemp(prefix="stats-worker-customers-", suffix=".sqlite",
                                                 dir=self.spill_dir)
            os.close(fd)
            self._db = sqlite3.connect(self._db_path, check_same_thread=False)
            self._db.executescript(
                "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
                "CREATE TABLE figures (customer_id TEXT NOT NULL, currency TEXT NOT NULL,"
                " orders INTEGER NOT NULL, units INTEGER NOT NULL, total INTEGER NOT NULL,"
                " PRIMARY KEY (customer_id, currency)) WITHOUT ROWID;")
        rows = ((customer_id, currency, *figures)
                for customer_id, per_currency in self._memory.items()
                for currency, figures in per_currency.items())
        with self._db:
            self._db.executemany(
                "INSERT INTO figures VALUES (?, ?, ?, ?, ?) ON CONFLICT (customer_id, currency) DO UPDATE"
                " SET orders = orders + excluded.orders, units = units + excluded.units,"
                " total = total + excluded.total", rows)
        self._memory.clear()

    def close(self) -> None:
        """Delete the spill file, if any."""
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._db_path is not None:
            try:
                os.unlink(self._db_path)
            except FileNotFoundError:
                pass
            self._db_path = None

    def __enter__(self) -> "CustomerTally":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
