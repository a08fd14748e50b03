"""One way to write a file so that nothing is ever half-written (reports, keys, custom data)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


@contextlib.contextmanager
def atomic_writer(path: Path, *, mode: int) -> Iterator[BinaryIO]:
    """Write ``path`` piece by piece; readers see the old file or the whole new one, never a part.

    The bytes go to a temporary file in the same directory (``.{name}.*.tmp``, created 0600 so a
    secret is never readable in between); when the block ends they are fsynced, get ``mode``, and
    ``os.replace`` swaps them in (atomic on POSIX within one file system); the directory is fsynced
    so the rename survives a crash too. If the block raises, the temporary file is removed and
    ``path`` is left as it was.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
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


def write_atomically(path: Path, data: bytes, *, mode: int) -> None:
    """Replace ``path`` with ``data`` atomically (see ``atomic_writer``)."""
    with atomic_writer(path, mode=mode) as out:
        out.write(data)
