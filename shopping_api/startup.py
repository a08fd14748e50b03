"""Stopping cleanly when a setting is bad, under the flask CLI and under gunicorn.

Under gunicorn each worker builds the app. A worker that exits with code 3 (``WORKER_BOOT_ERROR``)
makes the arbiter halt instead of respawning workers forever. But when a second worker reports
the same error while the arbiter is already halting, gunicorn's ``stop()`` reaps it and crashes
with a ``HaltServer`` traceback. So one worker per arbiter is elected (an exclusive marker file
named after the arbiter's pid) to exit with 3; the others wait to be stopped, and exit quietly.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from types import FrameType

    from gunicorn.workers.base import Worker

#: gunicorn's ``Arbiter.WORKER_BOOT_ERROR``: "halt, do not respawn".
BOOT_ERROR = 3
#: How long a non-elected worker waits for the arbiter to stop it.
WAIT_FOR_HALT_SECONDS = 10
#: A marker older than this belongs to an earlier arbiter that had the same pid.
MARKER_FRESH_SECONDS = 60


def exit_for_bad_setting(problem: str) -> NoReturn:
    """Print one line naming the bad setting and exit so that nothing restarts us."""
    worker = _gunicorn_worker()
    if worker is not None:
        if not worker.alive:  # the arbiter is halting already (a sibling reported the error)
            os._exit(0)
        if worker.cfg.workers > 1 and not _elected(_marker()):
            _wait_to_be_stopped(worker, _marker())  # the elected worker says it, once
    print(f"shopping-api: bad setting: {problem}", file=sys.stderr, flush=True)
    raise SystemExit(BOOT_ERROR)


def _gunicorn_worker() -> Worker | None:
    """The gunicorn worker loading us (None in the arbiter, as with --preload, or outside gunicorn)."""
    if "gunicorn.workers.base" not in sys.modules:
        return None
    from gunicorn.workers.base import Worker

    frame: FrameType | None = sys._getframe()
    while frame is not None:
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, Worker):
            return candidate
        frame = frame.f_back
    return None


def _marker() -> Path:
    return Path(tempfile.gettempdir()) / f"shopping-api-boot-error-{os.getppid()}"


def _elected(marker: Path) -> bool:
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        return True
    except FileExistsError:
        if time.time() - marker.stat().st_mtime > MARKER_FRESH_SECONDS:
            marker.touch()  # a leftover from an arbiter long gone: report the error ourselves
            return True
        return False


def _wait_to_be_stopped(worker: Worker, marker: Path) -> NoReturn:
    # gunicorn's own signal handler clears ``alive`` when the arbiter tells the workers to stop.
    # By then every sibling has been told too, and one still importing checks ``alive`` before
    # the election, so removing the marker cannot elect a second worker.
    deadline = time.monotonic() + WAIT_FOR_HALT_SECONDS
    while worker.alive and time.monotonic() < deadline:
        time.sleep(0.05)
    marker.unlink(missing_ok=True)
    os._exit(0)
