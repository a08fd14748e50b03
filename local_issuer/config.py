"""The issuer's world, shaped like Logto's data model: API resources, M2M roles, apps, users.

Read from a YAML (or JSON) file and validated with pydantic. Anything wrong stops the server at
start with one line naming the file, the entry and the problem (``ConfigError``).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

#: Logto's default access-token lifetime for an API resource, in seconds.
DEFAULT_TTL = 3600
DEFAULT_CONFIG_NAME = "default.yaml"
#: The tenant before provisioning: the Management API, its role and one admin app.
BOOTSTRAP_CONFIG_NAME = "bootstrap.yaml"


class ConfigError(Exception):
    """The config file cannot be used; the message names the file, the entry and the problem."""


class _Model(BaseModel):
    # Unknown keys are typos until proven otherwise: refuse them rather than ignore them.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Scope(_Model):
    """A permission of an API resource, e.g. ``read:orders``."""

    name: str = Field(min_length=1)
    description: str = ""

    @field_validator("name")
    @classmethod
    def _no_spaces(cls, value: str) -> str:
        if any(ch.isspace() for ch in value):
            raise ValueError("a scope name cannot contain whitespace (scopes are space-separated)")
        return value


def _scope_entries(value: Any) -> Any:
    # A bare name is the short form of {"name": ...}.
    if isinstance(value, list):
        return [{"name": item} if isinstance(item, str) else item for item in value]
    return value


class Resource(_Model):
    """An API resource: ``indicator`` becomes the token's ``aud``, compared exactly."""

    name: str = Field(min_length=1)
    indicator: str = Field(min_length=1)
    access_token_ttl: int = Field(default=DEFAULT_TTL, alias="accessTokenTtl", ge=1, le=86400 * 30)
    scopes: tuple[Scope, ...] = ()

    @field_validator("scopes", mode="before")
    @classmethod
    def _short_scopes(cls, value: Any) -> Any:
        return _scope_entries(value)

    @field_validator("indicator")
    @classmethod
    def _absolute_uri(cls, value: str) -> str:
        # RFC 8707 section 2: an absolute URI without a fragment.
        if "://" not in value or "#" in value or value != value.strip():
            raise ValueError("must be an absolute URI without a fragment, e.g. https://shopping.api")
        return value

    @model_validator(mode="after")
    def _unique_scopes(self) -> Resource:
        names = [scope.name for scope in self.scopes]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"scope defined twice: {', '.join(duplicates)}")
        return self

    @property
    def scope_names(self) -> frozenset[str]:
        return frozenset(scope.name for scope in self.scopes)


class Role(_Model):
    """A machine-to-machine role: the scopes it grants, per resource indicator."""

    name: str = Field(min_length=1)
    type: Literal["MachineToMachine"] = "MachineToMachine"
    description: str = ""
    scopes: dict[str, tuple[str, ...]] = Field(default_factory=dict)


class EnvNames(_Model):
    """Where ``logto-m2m provision`` writes an app's credentials: env variable names."""

    id: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    secret: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")


class Application(_Model):
    """A machine-to-machine app: the credentials of ``client_credentials`` and its roles."""

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._~-]+$")
    name: str = ""
    type: Literal["MachineToMachine"] = "MachineToMachine"
    secret: str = Field(min_length=8)
    roles: tuple[str, ...] = ()
    #: Read by the provisioner only (the local issuer knows its apps' credentials already).
    env: EnvNames | None = None


class User(_Model):
    """A user the Management API subset can read, with the custom data it starts with."""

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._~-]+$")
    name: str | None = None
    username: str | None = None
    primary_email: str | None = Field(default=None, alias="primaryEmail")
    custom_data: dict[str, Any] = Field(default_factory=dict, alias="customData")


def _duplicates(values: list[str]) -> list[str]:
    return sorted({value for value in values if values.count(value) > 1})


class IssuerConfig(_Model):
    """Everything that exists in this local tenant."""

    resources: tuple[Resource, ...] = ()
    roles: tuple[Role, ...] = ()
    applications: tuple[Application, ...] = ()
    users: tuple[User, ...] = ()

    @model_validator(mode="after")
    def _references(self) -> IssuerConfig:
        for kind, names in (
            ("resources", [r.indicator for r in self.resources]),
            ("roles", [r.name for r in self.roles]),
            ("applications", [a.id for a in self.applications]),
            ("users", [u.id for u in self.users]),
        ):
            if dups := _duplicates(names):
                raise ValueError(f"{kind}: defined twice: {', '.join(dups)}")
        by_indicator = {r.indicator: r for r in self.resources}
        for index, role in enumerate(self.roles):
            for indicator, scopes in role.scopes.items():
                resource = by_indicator.get(indicator)
                if resource is None:
                    raise ValueError(f"roles[{index}] ({role.name}): unknown resource {indicator!r}")
                if unknown := [s for s in scopes if s not in resource.scope_names]:
                    raise ValueError(
                        f"roles[{index}] ({role.name}): resource {indicator!r} has no "
                        f"scope {', '.join(map(repr, unknown))}"
                    )
        role_names = {role.name for role in self.roles}
        for index, app in enumerate(self.applications):
            if unknown := [r for r in app.roles if r not in role_names]:
                raise ValueError(
                    f"applications[{index}] ({app.id}): unknown role {', '.join(map(repr, unknown))}"
                )
        return self

    def resource(self, indicator: str) -> Resource | None:
        return next((r for r in self.resources if r.indicator == indicator), None)

    def application(self, app_id: str) -> Application | None:
        return next((a for a in self.applications if a.id == app_id), None)

    def user(self, user_id: str) -> User | None:
        return next((u for u in self.users if u.id == user_id), None)

    def scopes_held(self, app: Application, indicator: str) -> frozenset[str]:
        """The scopes of ``indicator`` that the app's M2M roles grant."""
        held: set[str] = set()
        for role in self.roles:
            if role.name in app.roles:
                held.update(role.scopes.get(indicator, ()))
        return frozenset(held)


def default_config_path() -> Path:
    """The demo config shipped inside the package."""
    return Path(str(resources.files("local_issuer").joinpath(DEFAULT_CONFIG_NAME)))


def bootstrap_config_path() -> Path:
    """The bootstrap tenant shipped inside the package (``--config`` it to start there)."""
    return Path(str(resources.files("local_issuer").joinpath(BOOTSTRAP_CONFIG_NAME)))


def packaged_config_paths() -> tuple[Path, ...]:
    """The config files shipped with the package: their secrets are public."""
    return (default_config_path(), bootstrap_config_path())


def _entry_label(data: Any, loc: tuple[Any, ...]) -> str:
    """``applications[1] (m2m-admin).secret`` from a pydantic location and the raw data."""
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int):
            parts[-1] = f"{parts[-1]}[{item}]" if parts else f"[{item}]"
            node = node[item] if isinstance(node, list) and item < len(node) else None
            label = (
                (node.get("id") or node.get("name") or node.get("indicator"))
                if isinstance(node, dict)
                else None
            )
            if isinstance(label, str):
                parts[-1] += f" ({label})"
        else:
            parts.append(str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return ".".join(parts)


def describe(exc: ValidationError, data: Any) -> str:
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        message = error["msg"].removeprefix("Value error, ")
        where = _entry_label(data, tuple(error["loc"]))
        if error["type"] == "missing":
            message = "is required"
        elif error["type"] == "extra_forbidden":
            message = "is not a known field"
        problems.append(f"{where}: {message}" if where else message)
    return "; ".join(problems)


def parse_config(text: str, *, source: str, as_json: bool = False) -> IssuerConfig:
    """Validate config text; ``source`` names the file in error messages."""
    try:
        data = json.loads(text) if as_json else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{source}: not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or "cannot be parsed"
        raise ConfigError(f"{source}: not valid YAML{where}: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: must be a mapping with resources, roles, applications, users")
    try:
        return IssuerConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {describe(exc, data)}") from None


def load_config(path: Path | None = None) -> IssuerConfig:
    """Read and validate the config file (the packaged demo config when ``path`` is None)."""
    path = path or default_config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.__class__.__name__}") from None
    return parse_config(text, source=str(path), as_json=path.suffix.lower() == ".json")
