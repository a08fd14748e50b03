"""Customers whose figures did not reach Logto, kept per day until a later run syncs them.

When the custom-data sync fails (a token without the Management API scope, 401/403, Logto out of
reach or failing), the day's report is written anyway and each customer not synced is kept in
``REPORTS_DIR/pending-sync/YYYY-MM-DD.jsonl`` (one JSON object a line, mode 0600: it names
customers and what they spent). A later run reads it back and retries the sync alone, without
fetching the day's orders again; the file is removed once every customer in it is synced.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from logto_m2m.files import atomic_writer

from .customers import CustomerFigures

log = logging.getLogger(__name__)

PENDING_DIR = "pending-sync"


class PendingRecorder:
    """Appends customers to a day's pending file (called from one thread: the sync's caller).

    The file (and its directory) is only started at the first customer, so a sync that went well
    leaves nothing behind.
    """

    def __init__(self, path: Path, files: contextlib.ExitStack) -> None:
        self._path = path
        self._files = files
        self._out: BinaryIO | None = None
        self.count = 0

    def __call__(self, customer_id: str, figures: CustomerFigures) -> None:
        if self._out is None:
            self._out = self._files.enter_context(atomic_writer(self._path, mode=0o600))
        line = {"customer_id": customer_id, **figures.as_dict()}
        self._out.write(json.dumps(line, sort_keys=True, ensure_ascii=False).encode("utf-8") + b"\n")
        self.count += 1


class PendingSyncs:
    """The pending-sync files of one reports directory."""

    def __init__(self, reports_dir: Path) -> None:
        self.dir = reports_dir / PENDING_DIR

    def path(self, day: dt.date) -> Path:
        return self.dir / f"{day.isoformat()}.jsonl"

    def days(self) -> list[dt.date]:
        """Days with customers still to sync, oldest first."""
        days = []
        for path in self.dir.glob("*.jsonl"):
            try:
                days.append(dt.date.fromisoformat(path.stem))
            except ValueError:
                log.warning("ignoring %s: not a pending-sync file of this worker", path)
        return sorted(days)

    def count(self, day: dt.date) -> int:
        """How many customers of ``day`` are still to sync (0 when none)."""
        try:
            with self.path(day).open("rb") as lines:
                return sum(1 for _ in lines)
        except FileNotFoundError:
            return 0

    def read(self, day: dt.date) -> Iterator[tuple[str, CustomerFigures]]:
        """The customers of ``day`` still to sync, streamed from the file."""
        with self.path(day).open("rb") as lines:
            for number, line in enumerate(lines, 1):
                try:
                    entry = json.loads(line)
                    figures = CustomerFigures(int(entry["orders"]), int(entry["units"]), dict(entry["spent"]))
                    yield str(entry["customer_id"]), figures
                except (ValueError, KeyError, TypeError):
                    log.warning("%s line %d is not a pending customer; skipped", self.path(day), number)

    @contextlib.contextmanager
    def recording(self, day: dt.date) -> Iterator[PendingRecorder]:
        """Collect the customers of ``day`` that fail to sync; the file is replaced when the block
        ends (atomically), or removed when no customer failed."""
        path = self.path(day)
        with contextlib.ExitStack() as files:  # commits the file, or drops it if the block raises
            recorder = PendingRecorder(path, files)
            yield recorder
        if not recorder.count:
            path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # only when it is empty: nothing pending any more
                self.dir.rmdir()
