"""One settings loader for every program in the project.

Each program declares its settings as a pydantic-settings class (field ``logto_app_id`` is read
from the environment variable ``LOGTO_APP_ID``, or from ``.env`` in the working directory).
``load_settings`` turns pydantic's validation report into one line per bad setting that names the
variable, and never echoes the value (it may be a secret).
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

T = TypeVar("T", bound=BaseSettings)

ENV_FILE = ".env"


class SettingsError(Exception):
    """A setting is missing or malformed; the message names it and says what is wrong."""


class ProjectSettings(BaseSettings):
    """Base for every program's settings: environment first, then ``.env``; unknown keys ignored."""

    model_config = SettingsConfigDict(
        env_file=ENV_FILE,
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        validate_default=True,
    )


def describe_validation_error(exc: ValidationError) -> str:
    """Render a ValidationError as ``NAME: problem; NAME: problem`` without input values."""
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        name = ".".join(str(part) for part in error["loc"]).upper() or "SETTINGS"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing":
            message = "is required but not set"
        problems.append(f"{name}: {message}")
    return "; ".join(problems)


def load_settings(cls: type[T], *, env_file: str | None = ENV_FILE, **overrides: Any) -> T:
    """Build ``cls`` from the environment (and ``env_file``); explicit overrides win."""
    try:
        return cls(_env_file=env_file, **overrides)
    except ValidationError as exc:
        raise SettingsError(describe_validation_error(exc)) from None
