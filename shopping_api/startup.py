"""Refusing to start on a bad setting: one line naming it, exit status 3, no traceback.

gunicorn.conf.py calls ``check_settings`` from the ``on_starting`` hook, which runs once in the
master before any worker is forked: a bad setting stops gunicorn before it listens, however many
workers were asked for. Status 3 is gunicorn's own "worker failed to boot, do not restart".
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn, TypeVar

from pydantic_settings import BaseSettings

from logto_m2m.settings import ENV_FILE, SettingsError, load_settings

#: gunicorn's ``Arbiter.WORKER_BOOT_ERROR``; supervisors read it as "do not restart".
BOOT_ERROR = 3

T = TypeVar("T", bound=BaseSettings)


def exit_for_bad_setting(problem: str) -> NoReturn:
    """Print one line naming the bad setting and exit with status 3."""
    print(f"shopping-api: bad setting: {problem}", file=sys.stderr, flush=True)
    raise SystemExit(BOOT_ERROR)


def settings_or_exit(cls: type[T], *, env_file: str | None = ENV_FILE, **overrides: Any) -> T:
    """Load ``cls`` from the environment, or stop the program with one clear line."""
    try:
        return load_settings(cls, env_file=env_file, **overrides)
    except SettingsError as exc:
        exit_for_bad_setting(str(exc))


def check_settings() -> None:
    """Stop at once if the API's settings are bad (gunicorn.conf.py's ``on_starting`` hook)."""
    from .config import ApiSettings

    settings_or_exit(ApiSettings)
