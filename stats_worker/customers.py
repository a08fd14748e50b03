"""Per-customer figures for one day, with memory bounded however many customers there are.

Orders arrive sorted by time, not by customer, so every customer seen so far must be remembered
until the day is done (for the distinct count and the custom-data sync). Figures are kept in a
dict of small flat lists until it holds ``max_in_memory`` customers (default 100,000: the worker
then peaks at about 115 MB, under its 150 MB budget); then its rows are appended to a temporary
SQLite file and the dict is emptied. When the day is done, one ``GROUP BY`` sums each customer's
rows (external aggregation, sorted on disk if need be). Memory therefore stays below that bound;
a day with fewer customers never touches disk.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

DEFAULT_MAX_IN_MEMORY = 100_000


@dataclass
class CustomerFigures:
    """What one customer did on one day. Money in minor units per currency."""

    orders: int = 0
    units: int = 0
    spent: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"orders": self.orders, "units": self.units, "spent": dict(sorted(self.spent.items()))}


class CustomerTally:
    """Counts orders, units and money per customer; spills to a temporary SQLite file when large."""

    def __init__(self, max_in_memory: int = DEFAULT_MAX_IN_MEMORY, spill_dir: str | None = None) -> None:
        self.max_in_memory = max_in_memory
        self.spill_dir = spill_dir
        # customer id -> [orders, units, currency, total, (currency, total)...]: one flat list, as
        # nearly every customer pays in one currency (about 190 bytes a customer with the id)
        self._memory: dict[str, list[Any]] = {}
        self._db: sqlite3.Connection | None = None
        self._db_path: str | None = None

    @property
    def spilled(self) -> bool:
        return self._db is not None

    def add(self, customer_id: str, currency: str, total: int, units: int) -> None:
        entry = self._memory.get(customer_id)
        if entry is None:
            if len(self._memory) >= self.max_in_memory:
                self._spill()
            self._memory[customer_id] = [1, units, currency, total]
            return
        entry[0] += 1
        entry[1] += units
        if entry[2] == currency:
            entry[3] += total
            return
        for index in range(4, len(entry), 2):
            if entry[index] == currency:
                entry[index + 1] += total
                return
        entry += (currency, total)

    @staticmethod
    def _per_currency(entry: list[Any]) -> list[tuple[str, int]]:
        return [(entry[i], entry[i + 1]) for i in range(2, len(entry), 2)]

    def __len__(self) -> int:
        """Distinct customers seen."""
        if self._db is None:
            return len(self._memory)
        self._spill()
        count: int = self._db.execute("SELECT COUNT(DISTINCT customer_id) FROM figures").fetchone()[0]
        return count

    def __iter__(self) -> Iterator[tuple[str, CustomerFigures]]:
        """Each customer's figures, in customer-id order."""
        if self._db is None:
            for customer_id in sorted(self._memory):
                entry = self._memory[customer_id]
                yield customer_id, CustomerFigures(entry[0], entry[1], dict(self._per_currency(entry)))
            return
        self._spill()
        rows = self._db.execute(
            "SELECT customer_id, SUM(orders), SUM(units), currency, SUM(total) FROM figures"
            " GROUP BY customer_id, currency ORDER BY customer_id, currency"
        )
        figures: CustomerFigures | None = None
        current = ""
        for customer_id, orders, units, currency, total in rows:
            if figures is None or customer_id != current:
                if figures is not None:
                    yield current, figures
                current, figures = customer_id, CustomerFigures()
            figures.orders += orders
            figures.units += units
            figures.spent[currency] = total
        if figures is not None:
            yield current, figures

    def _spill(self) -> None:
        if self._db is None:
            fd, self._db_path = tempfile.mkstemp(
                prefix="stats-worker-customers-", suffix=".sqlite", dir=self.spill_dir
            )
            os.close(fd)
            self._db = sqlite3.connect(self._db_path, check_same_thread=False)
            self._db.executescript(
                "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
                # Appended without an index (sequential writes, cheap); summed by one GROUP BY,
                # sorted on disk if need be, when the day is done.
                "CREATE TABLE figures (customer_id TEXT NOT NULL, currency TEXT NOT NULL,"
                " orders INTEGER NOT NULL, units INTEGER NOT NULL, total INTEGER NOT NULL);"
            )
        with self._db:
            self._db.executemany(
                "INSERT INTO figures (customer_id, currency, orders, units, total) VALUES (?, ?, ?, ?, ?)",
                self._rows(),
            )
        self._memory.clear()

    def _rows(self) -> Iterator[tuple[str, str, int, int, int]]:
        for customer_id, entry in self._memory.items():
            orders, units = entry[0], entry[1]
            for currency, total in self._per_currency(entry):
                yield customer_id, currency, orders, units, total
                orders = units = 0  # counted once, on the row of the first currency

    def close(self) -> None:
        """Delete the spill file, if any."""
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._db_path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._db_path)
            self._db_path = None

    def __enter__(self) -> CustomerTally:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
