"""The shopping API's settings (environment variables, or `.env`)."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode

from logto_m2m.logto import issuer_for
from logto_m2m.settings import ProjectSettings, http_url, resource_indicator

#: Algorithms Logto can sign with (RS256, PS256, ES256, ES384, ES512); never "none" or HMAC.
SUPPORTED_ALGORITHMS = ("ES384", "ES256", "ES512", "RS256", "PS256")


class ApiSettings(ProjectSettings):
    """Where tokens come from and what they must say, plus where the data lives."""

    logto_endpoint: str = "http://127.0.0.1:3001"
    #: Expected ``iss``, compared exactly; defaults to ``{LOGTO_ENDPOINT}/oidc``.
    logto_issuer: str | None = None
    #: Where keys come from; defaults to the issuer's discovery document, else ``{issuer}/jwks``.
    logto_jwks_uri: str | None = None
    shopping_api_resource: str = "https://shopping.api"
    #: SQLAlchemy URL; ``None`` means a SQLite file in the Flask instance folder.
    database_url: str | None = None
    token_algorithms: Annotated[tuple[str, ...], NoDecode] = SUPPORTED_ALGORITHMS
    token_leeway_seconds: int = Field(default=30, ge=0, le=300)
    jwks_cache_ttl_seconds: int = Field(default=600, ge=1)
    jwks_refetch_cooldown_seconds: int = Field(default=30, ge=0)
    token_cache_size: int = Field(default=10_000, ge=0)

    @field_validator("logto_endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        return http_url(value, strip_slash=True)

    @field_validator("logto_issuer", "logto_jwks_uri")
    @classmethod
    def _exact_url(cls, value: str | None) -> str | None:
        # Kept exactly as written: "iss" is compared character for character.
        return None if value is None else http_url(value)

    @field_validator("shopping_api_resource")
    @classmethod
    def _resource(cls, value: str) -> str:
        return resource_indicator(value)

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError("must be a SQLAlchemy URL such as postgresql+psycopg://user@host/db") from None
        # psycopg 3 is the PostgreSQL driver we ship; accept the common driverless spellings too.
        if url.drivername in ("postgres", "postgresql", "postgresql+psycopg"):
            return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        if url.drivername not in ("sqlite", "sqlite+pysqlite"):
            raise ValueError("must be a sqlite:// or postgresql+psycopg:// URL")
        return value

    @field_validator("token_algorithms", mode="before")
    @classmethod
    def _algorithms(cls, value: object) -> tuple[str, ...]:
        names: tuple[object, ...] = ()  # anything but a string or a sequence of names is refused below
        if isinstance(value, str):
            names = tuple(value.replace(",", " ").split())
        elif isinstance(value, list | tuple):
            names = tuple(value)
        unknown = [name for name in names if name not in SUPPORTED_ALGORITHMS]
        if unknown or not names:
            raise ValueError(f"choose from {' '.join(SUPPORTED_ALGORITHMS)}")
        return tuple(str(name) for name in names)  # each one of SUPPORTED_ALGORITHMS, so a str

    @model_validator(mode="after")
    def _default_issuer(self) -> ApiSettings:
        if self.logto_issuer is None:
            object.__setattr__(self, "logto_issuer", issuer_for(self.logto_endpoint))
        return self

    @property
    def issuer(self) -> str:
        """``logto_issuer``, which is never None once validated (typed as such for the checker)."""
        return self.logto_issuer or issuer_for(self.logto_endpoint)


class ServingSettings(ProjectSettings):
    """How gunicorn serves the API (read by gunicorn.conf.py) and how every log line looks."""

    #: Where gunicorn listens: HOST:PORT, or unix:PATH.
    shopping_api_bind: str = "127.0.0.1:8000"
    #: Worker processes (the name Heroku, Render and gunicorn's own default use).
    web_concurrency: int = Field(default=2, ge=1, le=64)
    #: Addresses whose X-Forwarded-* headers are trusted: the reverse proxy's, comma-separated.
    forwarded_allow_ips: str = "127.0.0.1"
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("shopping_api_bind")
    @classmethod
    def _bind(cls, value: str) -> str:
        if value.startswith("unix:") and len(value) > len("unix:"):
            return value
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("must be HOST:PORT (e.g. 127.0.0.1:8000) or unix:PATH")
        return value

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _addresses(cls, value: str) -> str:
        for item in (part.strip() for part in value.split(",")):
            if item == "*":
                continue  # gunicorn's "trust everyone": only behind a network nobody else reaches
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError("must be comma-separated IP addresses or networks (CIDR)") from None
        return value

    @field_validator("log_format", "log_level", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value
