"""Report files: ``REPORTS_DIR/YYYY-MM-DD.json``, written atomically and byte-for-byte reproducible."""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from logto_m2m.files import write_atomically

log = logging.getLogger(__name__)

#: A temporary file older than this was left by a worker that died while writing (a write takes
#: milliseconds), so it is safe to delete.
STALE_TEMP_SECONDS = 300


class ReportsDirError(Exception):
    """REPORTS_DIR cannot be created or written; the message names it and says what to check."""


def check_writable(reports_dir: Path) -> None:
    """Fail now, before any token is requested, if a report could not be written later.

    Creating (and at once removing) a file is the only true test: permission bits do not tell
    about read-only mounts, ACLs or a directory owned by another user in a container volume.
    """
    try:
        reports_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=reports_dir):
            pass
    except OSError as exc:
        raise ReportsDirError(
            f"REPORTS_DIR {reports_dir} is not writable ({exc.strerror or type(exc).__name__}); "
            f"give the worker's user write access to it (uid {os.geteuid()}), or set REPORTS_DIR "
            "to a directory it can write"
        ) from None


@contextlib.contextmanager
def reports_lock(reports_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``reports_dir`` across processes while a day is built.

    ``run``, ``once`` and ``backfill`` may run side by side; the custom-data sync reads each
    user's data and writes it back (Logto has no conditional update), so two jobs at once could
    overwrite each other's days. The lock is on the directory itself: no lock file to clean up,
    and the kernel releases it if the process dies. The directory is checked to be writable first.
    """
    check_writable(reports_dir)
    fd = os.open(reports_dir, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("another stats-worker is writing to %s: waiting for it", reports_dir)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def report_path(reports_dir: Path, day: dt.date) -> Path:
    return reports_dir / f"{day.isoformat()}.json"


def render(report: dict[str, Any]) -> bytes:
    """Deterministic JSON: sorted keys, fixed indentation, one trailing newline."""
    return (json.dumps(report, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def write_report(reports_dir: Path, day: dt.date, report: dict[str, Any]) -> Path:
    """Write the report so that readers see the old file or the new one, never a part of one."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(reports_dir)
    target = report_path(reports_dir, day)
    write_atomically(target, render(report), mode=0o644)  # a report is not a secret
    return target


def _remove_stale_temps(reports_dir: Path) -> None:
    cutoff = time.time() - STALE_TEMP_SECONDS
    for temp in reports_dir.glob(".*.json.*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            if temp.stat().st_mtime < cutoff:
                temp.unlink()
