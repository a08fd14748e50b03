"""One way to write a file so that nothing is ever half-written (reports, keys, custom data)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_atomically(path: Path, data: bytes, *, mode: int) -> None:
    """Replace ``path`` with ``data``: readers see the old file or the new one, never a part.

    The bytes go to a temporary file in the same directory (``.{name}.*.tmp``, created 0600 so a
    secret is never readable in between), are fsynced, get ``mode``, then ``os.replace`` swaps them
    in (atomic on POSIX within one file system); the directory is fsynced so the rename survives a
    crash too.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
