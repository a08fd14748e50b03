"""The tenant as the Management API sees it: API resources with scopes, roles, applications.

It starts from the config file (ids of config objects are derived from their natural keys, so they
are the same at every start) and adds what was created through the Management API, which is kept in
``tenant.json`` in the state directory (written atomically, 0600: it holds app secrets). Objects
are answered in Logto's shapes (Logto OSS v1.37.1, ``@logto/schemas``: Resources, Scopes, Roles,
Applications, ApplicationSecrets), field for field and in Logto's field order.

The token endpoint reads the same object, so an app created through the API gets tokens at once.
One lock serialises every change and the file write that records it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import string
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from logto_m2m.files import write_atomically

from .config import IssuerConfig

TENANT_ID = "default"
#: Logto's ``generateStandardId``: 21 characters of lowercase letters and digits.
ID_ALPHABET = string.ascii_lowercase + string.digits
ID_LENGTH = 21
#: Logto's ``generateStandardSecret``: 32 characters of letters and digits.
SECRET_ALPHABET = string.ascii_letters + string.digits
SECRET_LENGTH = 32
#: Logto's prefix for the legacy secret kept on the application row since secrets moved to their own table.
INTERNAL_PREFIX = "#internal:"
DEFAULT_SECRET_NAME = "Default secret"  # noqa: S105 -- the name Logto gives it, not a secret
M2M = "MachineToMachine"
STATE_FILE_NAME = "tenant.json"


class TenantStateError(Exception):
    """The state file exists but cannot be used."""


def new_id() -> str:
    return "".join(secrets.choice(ID_ALPHABET) for _ in range(ID_LENGTH))


def new_secret() -> str:
    return "".join(secrets.choice(SECRET_ALPHABET) for _ in range(SECRET_LENGTH))


def stable_id(kind: str, *key: str) -> str:
    """An id of Logto's form derived from a config object's natural key (the same at every start)."""
    digest = int.from_bytes(hashlib.sha256("\0".join((kind, *key)).encode()).digest(), "big")
    chars = []
    for _ in range(ID_LENGTH):
        digest, index = divmod(digest, len(ID_ALPHABET))
        chars.append(ID_ALPHABET[index])
    return "".join(chars)


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class ScopeRecord:
    id: str
    resource_id: str
    name: str
    description: str | None
    created_at: int

    def body(self) -> dict[str, Any]:
        return {
            "tenantId": TENANT_ID,
            "id": self.id,
            "resourceId": self.resource_id,
            "name": self.name,
            "description": self.description,
            "createdAt": self.created_at,
        }


@dataclass
class ResourceRecord:
    id: str
    name: str
    indicator: str
    access_token_ttl: int
    is_default: bool = False

    def body(self) -> dict[str, Any]:
        return {
            "tenantId": TENANT_ID,
            "id": self.id,
            "name": self.name,
            "indicator": self.indicator,
            "isDefault": self.is_default,
            "accessTokenTtl": self.access_token_ttl,
        }


@dataclass
class RoleRecord:
    id: str
    name: str
    description: str
    type: str
    scope_ids: list[str] = field(default_factory=list)
    is_default: bool = False

    def body(self) -> dict[str, Any]:
        return {
            "tenantId": TENANT_ID,
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "type": self.type,
            "isDefault": self.is_default,
        }


@dataclass
class SecretRecord:
    name: str
    value: str
    created_at: int
    expires_at: int | None = None

    def usable(self, now: int) -> bool:
        return self.expires_at is None or self.expires_at > now


@dataclass
class ApplicationRecord:
    id: str
    name: str
    type: str
    secret: str  # the legacy secret of the application row (Logto: "#internal:..." for new apps)
    description: str | None
    created_at: int
    secrets: list[SecretRecord] = field(default_factory=list)
    role_ids: list[str] = field(default_factory=list)
    custom_data: dict[str, Any] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        return {
            "tenantId": TENANT_ID,
            "id": self.id,
            "name": self.name,
            "secret": self.secret,
            "description": self.description,
            "type": self.type,
            "oidcClientMetadata": {"redirectUris": [], "postLogoutRedirectUris": []},
            "customClientMetadata": {},
            "protectedAppMetadata": None,
            "customData": dict(self.custom_data),
            "isThirdParty": False,
            "createdAt": self.created_at,
        }

    def secret_body(self, record: SecretRecord) -> dict[str, Any]:
        return {
            "tenantId": TENANT_ID,
            "applicationId": self.id,
            "name": record.name,
            "value": record.value,
            "createdAt": record.created_at,
            "expiresAt": record.expires_at,
        }

    def check_secret(self, candidate: str) -> bool:
        """Logto accepts the legacy secret and every unexpired secret of the app (capture token-17)."""
        now = now_ms()
        values = [self.secret, *(s.value for s in self.secrets if s.usable(now))]
        # Compare against every value, always: the time taken says nothing about which one matched.
        matches = [hmac.compare_digest(candidate.encode(), value.encode()) for value in values]
        return any(matches)


class Tenant:
    """Everything that exists in the local tenant; thread-safe; changes are saved as they happen."""

    def __init__(self, config: IssuerConfig, state_file: Path | None) -> None:
        self.state_file = state_file
        self.lock = threading.RLock()
        self.resources: dict[str, ResourceRecord] = {}
        self.scopes: dict[str, ScopeRecord] = {}
        self.roles: dict[str, RoleRecord] = {}
        self.applications: dict[str, ApplicationRecord] = {}
        started = now_ms()
        self._from_config(config, started)
        # What the config says a role grants and an app holds: saved state adds to it, never keeps
        # what the config has since removed.
        self._config_role_scopes = {r.id: set(r.scope_ids) for r in self.roles.values()}
        self._config_app_roles = {a.id: set(a.role_ids) for a in self.applications.values()}
        if state_file is not None and state_file.exists():
            self._merge_saved(self._read(state_file))

    # -- building ---------------------------------------------------------------------------------

    def _from_config(self, config: IssuerConfig, started: int) -> None:
        for resource in config.resources:
            resource_id = stable_id("resource", resource.indicator)
            self.resources[resource_id] = ResourceRecord(
                resource_id, resource.name, resource.indicator, resource.access_token_ttl
            )
            for scope in resource.scopes:
                scope_id = stable_id("scope", resource.indicator, scope.name)
                self.scopes[scope_id] = ScopeRecord(
                    scope_id, resource_id, scope.name, scope.description or None, started
                )
        for role in config.roles:
            role_id = stable_id("role", role.name)
            scope_ids = [
                stable_id("scope", indicator, name)
                for indicator, names in role.scopes.items()
                for name in names
            ]
            self.roles[role_id] = RoleRecord(role_id, role.name, role.description, role.type, scope_ids)
        for app in config.applications:
            self.applications[app.id] = ApplicationRecord(
                id=app.id,
                name=app.name or app.id,
                type=M2M,
                secret=app.secret,
                description=None,
                created_at=started,
                secrets=[SecretRecord(DEFAULT_SECRET_NAME, app.secret, started)],
                role_ids=[stable_id("role", name) for name in app.roles],
            )

    def _read(self, path: Path) -> dict[str, Any]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise TenantStateError(
                f"{path}: cannot be read ({exc.__class__.__name__}); "
                "move it away to start from the config file alone"
            ) from None
        if not isinstance(data, dict):
            raise TenantStateError(f"{path}: expected an object with resources, scopes, roles, applications")
        return data

    def _merge_saved(self, data: dict[str, Any]) -> None:
        """Add what the API created; config objects keep their config values, relations are unioned."""
        try:
            # A natural key the config has taken since (an indicator, a role name) stays the config's.
            for item in data.get("resources", []):
                resource = ResourceRecord(**item)
                if resource.id in self.resources or self.resource_by_indicator(resource.indicator) is None:
                    self.resources.setdefault(resource.id, resource)
            for item in data.get("scopes", []):
                if item["resource_id"] in self.resources:
                    self.scopes.setdefault(item["id"], ScopeRecord(**item))
            for item in data.get("roles", []):
                saved = RoleRecord(**item)
                if saved.id not in self.roles and self.role_by_name(saved.name) is not None:
                    continue
                role = self.roles.setdefault(saved.id, saved)
                role.scope_ids = _union(role.scope_ids, saved.scope_ids)
            for item in data.get("applications", []):
                item = dict(item)
                item["secrets"] = [SecretRecord(**s) for s in item.get("secrets", [])]
                saved_app = ApplicationRecord(**item)
                app = self.applications.setdefault(saved_app.id, saved_app)
                app.role_ids = _union(app.role_ids, saved_app.role_ids)
                if app is not saved_app:
                    names = {s.name for s in app.secrets}
                    app.secrets.extend(s for s in saved_app.secrets if s.name not in names)
        except (KeyError, TypeError, AttributeError) as exc:
            raise TenantStateError(
                f"{self.state_file}: not a tenant state file ({exc.__class__.__name__}); "
                "move it away to start from the config file alone"
            ) from None
        # Relations to objects the config no longer has are dropped, as Logto's foreign keys would.
        for role in self.roles.values():
            role.scope_ids = [s for s in role.scope_ids if s in self.scopes]
        for app in self.applications.values():
            app.role_ids = [r for r in app.role_ids if r in self.roles]

    def save(self) -> None:
        """Write the whole tenant (call with the lock held, after each change)."""
        if self.state_file is None:
            return
        roles = []
        for role in self.roles.values():
            record = asdict(role)
            from_config = self._config_role_scopes.get(role.id, set())
            record["scope_ids"] = [s for s in role.scope_ids if s not in from_config]
            roles.append(record)
        applications = []
        for app in self.applications.values():
            record = asdict(app)
            from_config = self._config_app_roles.get(app.id, set())
            record["role_ids"] = [r for r in app.role_ids if r not in from_config]
            applications.append(record)
        data = {
            "resources": [asdict(r) for r in self.resources.values()],
            "scopes": [asdict(s) for s in self.scopes.values()],
            "roles": roles,
            "applications": applications,
        }
        write_atomically(self.state_file, json.dumps(data, indent=1).encode(), mode=0o600)

    # -- what the token endpoint asks ---------------------------------------------------------------

    def resource_by_indicator(self, indicator: str) -> ResourceRecord | None:
        with self.lock:
            return next((r for r in self.resources.values() if r.indicator == indicator), None)

    def client(self, client_id: str) -> ApplicationRecord | None:
        """An app that may use client_credentials (Logto: machine-to-machine apps only)."""
        with self.lock:
            app = self.applications.get(client_id)
            return app if app is not None and app.type == M2M else None

    def scopes_held(self, app: ApplicationRecord, indicator: str) -> frozenset[str]:
        """The scopes of ``indicator`` that the app's machine-to-machine roles grant."""
        with self.lock:
            resource = self.resource_by_indicator(indicator)
            if resource is None:
                return frozenset()
            held: set[str] = set()
            for role_id in app.role_ids:
                role = self.roles.get(role_id)
                if role is None or role.type != M2M:
                    continue
                for scope_id in role.scope_ids:
                    scope = self.scopes.get(scope_id)
                    if scope is not None and scope.resource_id == resource.id:
                        held.add(scope.name)
            return frozenset(held)

    # -- queries used by the routes -----------------------------------------------------------------

    def scopes_of_resource(self, resource_id: str) -> list[ScopeRecord]:
        return [s for s in self.scopes.values() if s.resource_id == resource_id]

    def role_by_name(self, name: str) -> RoleRecord | None:
        return next((r for r in self.roles.values() if r.name == name), None)


def _union(first: list[str], second: list[str]) -> list[str]:
    return list(dict.fromkeys([*first, *second]))
