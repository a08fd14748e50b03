"""Set variables in a ``.env`` file, keeping every other line as it was.

The file is parsed with python-dotenv (the parser pydantic-settings reads it with), so comments,
blank lines, ``export`` prefixes and quoting survive untouched; a variable already present is
replaced where it stands, a new one is appended. The result is written atomically with mode 0600
(it holds secrets), whatever the old file's mode was.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

from dotenv.parser import parse_stream

from logto_m2m.files import write_atomically

#: A value written bare; anything else goes in single quotes (dotenv reads those literally).
BARE_VALUE = re.compile(r"[A-Za-z0-9._~:/+=@-]*")


class EnvFileError(Exception):
    """The env file cannot be read or written; the message names it."""


def _line(name: str, value: str) -> str:
    if BARE_VALUE.fullmatch(value):
        return f"{name}={value}\n"
    # Single quotes are literal to dotenv except for \' and \\, so a backslash would change what
    # is read back; control characters (a newline, a carriage return) would break the line.
    if "'" in value or "\\" in value or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise EnvFileError(
            f"the value for {name} cannot be written to an env file (a quote, a backslash or a control "
            "character)"
        )
    return f"{name}='{value}'\n"


def check_writable(path: Path) -> None:
    """Fail early, before anything is provisioned, if ``path`` cannot be written."""
    if path.is_dir():
        raise EnvFileError(f"{path}: is a directory; --env-file must name a file")
    parent = next((p for p in (path.parent, *path.parent.parents) if p.exists()), Path("/"))
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.R_OK)):
        raise EnvFileError(f"{path}: cannot be written (no permission); choose another --env-file")


def read_env(path: Path) -> dict[str, str | None]:
    """The variables a file sets (empty when it does not exist)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise EnvFileError(f"{path}: cannot be read ({type(exc).__name__})") from None
    return {b.key: b.value for b in parse_stream(io.StringIO(text)) if b.key is not None}


def update_env(path: Path, values: dict[str, str]) -> list[str]:
    """Set ``values`` in ``path``; return the names whose value changed (nothing written if none)."""
    try:
        text = ""
        if path.exists():
            # newline="": a carriage return in the file is kept as it is, not read as a line break.
            with path.open(encoding="utf-8", newline="") as file:
                text = file.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise EnvFileError(f"{path}: cannot be read ({type(exc).__name__})") from None
    changed: list[str] = []
    pending = dict(values)
    out: list[str] = []
    for binding in parse_stream(io.StringIO(text)):
        original = binding.original.string
        if binding.key is None or binding.key not in values:
            out.append(original)
            continue
        name = binding.key
        if name not in pending:  # set twice: dotenv would take the last one, so keep only the first
            changed.append(name)
            continue
        new_value = pending.pop(name)
        if binding.value == new_value:
            out.append(original)
            continue
        # parse_stream puts the blank lines before a binding into it: keep them.
        blank = original[: len(original) - len(original.lstrip("\r\n\t "))]
        out.append(blank + _line(name, new_value))
        changed.append(name)
    if pending:
        if out and not out[-1].endswith("\n"):
            out.append("\n")
        for name, value in pending.items():
            out.append(_line(name, value))
            changed.append(name)
    if changed or (path.exists() and path.stat().st_mode & 0o077):
        try:
            write_atomically(path, "".join(out).encode("utf-8"), mode=0o600)
        except OSError as exc:
            raise EnvFileError(f"{path}: cannot be written ({exc.strerror or type(exc).__name__})") from None
    return list(dict.fromkeys(changed))
