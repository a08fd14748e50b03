"""The stats worker's settings (environment variables, or `.env`)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from logto_m2m.logto import issuer_for
from logto_m2m.settings import ProjectSettings, http_url, resource_indicator

from .cron import cron_trigger

#: RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
#: The report is built from orders, so a token without this scope is useless.
ORDERS_SCOPE = "read:orders"


class WorkerSettings(ProjectSettings):
    """Who the worker is in Logto, what it asks for, when it runs and where reports go."""

    logto_endpoint: str = "http://127.0.0.1:3001"
    logto_app_id: str = Field(min_length=1)
    logto_app_secret: SecretStr
    shopping_api_resource: str = "https://shopping.api"
    shopping_api_url: str = "http://127.0.0.1:8000"
    stats_scopes: Annotated[tuple[str, ...], NoDecode] = ("read:orders", "read:products")
    stats_cron: str = "5 0 * * *"
    stats_timezone: str = "UTC"
    reports_dir: Path = Path("reports")
    #: When set (e.g. https://default.logto.app/api), per-customer figures go to Logto custom data.
    logto_management_api_resource: str | None = None
    stats_http_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    stats_http_retries: int = Field(default=4, ge=0, le=10)
    stats_http_backoff_seconds: float = Field(default=0.5, ge=0, le=30)
    stats_page_size: int = Field(default=1000, ge=1, le=1000)
    stats_sync_concurrency: int = Field(default=4, ge=1, le=32)

    @field_validator("logto_endpoint", "shopping_api_url")
    @classmethod
    def _urls(cls, value: str) -> str:
        return http_url(value, strip_slash=True)

    @field_validator("logto_app_secret")
    @classmethod
    def _secret(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value():
            raise ValueError("is required but empty")
        return value

    @field_validator("shopping_api_resource")
    @classmethod
    def _resource(cls, value: str) -> str:
        return resource_indicator(value)

    @field_validator("logto_management_api_resource")
    @classmethod
    def _management_resource(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None  # an empty line in .env means "sync off"
        return resource_indicator(value)

    @field_validator("stats_scopes", mode="before")
    @classmethod
    def _scopes(cls, value: object) -> tuple[str, ...]:
        names: tuple[object, ...] = ()  # anything but a string or a sequence of names is refused below
        if isinstance(value, str):
            names = tuple(value.split())
        elif isinstance(value, list | tuple):
            names = tuple(value)
        if not all(isinstance(n, str) and SCOPE_TOKEN.fullmatch(n) for n in names):
            raise ValueError("must be space-separated scope names (RFC 6749 section 3.3)")
        if ORDERS_SCOPE not in names:
            raise ValueError(f"must include {ORDERS_SCOPE} (the report reads the day's orders)")
        return tuple(dict.fromkeys(str(name) for name in names))  # drop repeats, keep the order given

    @field_validator("stats_timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("must be an IANA time zone name such as UTC or Europe/Berlin") from None
        return value

    @field_validator("stats_cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        try:
            trigger = cron_trigger(value, "UTC")
        except ValueError as exc:
            raise ValueError(f"must be a 5-field crontab expression ({exc})") from None
        if trigger.get_next_fire_time(None, datetime.now(UTC)) is None:
            raise ValueError("never fires (no such date)")
        return value

    @property
    def timezone(self) -> ZoneInfo:
        return ZoneInfo(self.stats_timezone)

    @property
    def token_endpoint(self) -> str:
        return issuer_for(self.logto_endpoint) + "/token"
