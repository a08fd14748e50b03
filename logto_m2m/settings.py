"""One settings loader for every program in the project.

Each program declares its settings as a pydantic-settings class (field ``logto_app_id`` is read
from the environment variable ``LOGTO_APP_ID``, or from ``.env`` in the working directory).
``load_settings`` turns pydantic's validation report into one line per bad setting that names the
variable, and never echoes the value (it may be a secret).
"""

from __future__ import annotations

from typing import Any, TypeVar
from urllib.parse import urlsplit

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


def http_url(value: str, *, strip_slash: bool = False) -> str:
    """Validate an http(s) URL without query or fragment (a base URL, an issuer, a JWKS URI)."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ValueError("must be an http:// or https:// URL without query or fragment")
    return value.rstrip("/") if strip_slash else value


def resource_indicator(value: str) -> str:
    """Validate an API identifier (RFC 8707 section 2: an absolute URI without a fragment).

    Logto compares it as an exact string, so it is kept as written: a trailing slash makes it
    another indicator.
    """
    parts = urlsplit(value)
    if value != value.strip() or not parts.scheme or not (parts.netloc or parts.path) or parts.fragment:
        raise ValueError(
            "must be the API identifier exactly as registered in Logto "
            "(an absolute URI such as https://shopping.api, no fragment)"
        )
    return value


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
