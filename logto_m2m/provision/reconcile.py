"""Make a Logto tenant hold what a tenant file describes, without destroying anything.

Objects are matched by their natural keys: a resource by its indicator, a scope by its name within
the resource, a role by its name, an app by its name, a user by its username. What is missing is
created; what differs and can be changed in place is updated (a resource's token TTL, scopes a role
lacks, roles an app lacks); nothing the file does not mention is deleted or renamed. A difference
that could only be fixed by destroying something (a role of the same name but another type, two
apps of the same name) is a conflict: reported with what to do, and that object is left alone.

Logto's own Management API resource is written in tenant files as Logto OSS names it
(https://default.logto.app/api); it stands for the tenant's real one (LOGTO_MANAGEMENT_API_RESOURCE,
https://{tenant-id}.logto.app/api on Logto Cloud) and is only read, never changed.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from local_issuer.config import Application, EnvNames, IssuerConfig, Resource, Role, User
from logto_m2m.logto import OSS_MANAGEMENT_API_RESOURCE

from .management import Json, ManagementApi, ManagementApiError

M2M = "MachineToMachine"
#: The secret Logto creates with every M2M app (GET /api/applications/{id}/secrets); the Console
#: shows it as the App secret, and it is what HTTP Basic client authentication takes.
DEFAULT_SECRET_NAME = "Default secret"  # noqa: S105 -- a name Logto gives secrets, not one
#: Logto's legacy application secret (the ``secret`` field of an app) starts with this (recorded from
#: Logto OSS v1.37): an internal value, not the App secret; the entries of /secrets are what to use.
INTERNAL_SECRET_PREFIX = "#internal:"  # noqa: S105 -- a marker Logto uses, not a secret
#: An id for an object a dry run would create (never sent anywhere).
PLANNED = "(planned)"

Output = Callable[[str], None]
#: What a POST to a route's last segment creates, for error messages.
KINDS = {"resources": "resource", "scopes": "scope", "roles": "role", "applications": "app", "users": "user"}


@dataclass
class Summary:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    conflicts: int = 0

    def line(self) -> str:
        return (
            f"created {self.created}, updated {self.updated}, "
            f"unchanged {self.unchanged}, conflicts {self.conflicts}"
        )


@dataclass
class Outcome:
    """What provisioning found, did or would do."""

    summary: Summary = field(default_factory=Summary)
    #: Env variable -> value, for the apps whose ``env:`` names them.
    env: dict[str, str] = field(default_factory=dict)
    #: Env variables that a real run would set (dry run: apps not created yet).
    env_planned: list[str] = field(default_factory=list)


class Provisioner:
    """Walks the tenant file in dependency order: resources, scopes, roles, apps, users."""

    def __init__(
        self,
        api: ManagementApi,
        tenant: IssuerConfig,
        *,
        dry_run: bool = False,
        with_users: bool = False,
        out: Output = print,
    ) -> None:
        self.api = api
        self.tenant = tenant
        self.dry_run = dry_run
        self.with_users = with_users
        self.out = out
        self.management_resource = api.resource
        self.outcome = Outcome()
        #: (indicator as registered in Logto, scope name) -> scope id; missing: unknown/conflict.
        self.scope_ids: dict[tuple[str, str], str] = {}
        #: role name -> id of the M2M role in Logto ("(planned) name" in a dry run); missing: conflict.
        self.role_ids: dict[str, str] = {}
        self._resource_list: list[Json] | None = None

    # -- reporting ---------------------------------------------------------------------------

    def report(self, outcome: str, what: str, detail: str = "") -> None:
        """One line per object: ``created  role "Shopping reader" ...``; counted in the summary."""
        summary = self.outcome.summary
        setattr(summary, outcome, getattr(summary, outcome) + 1)
        verb = {"created": "create", "updated": "update", "unchanged": "unchanged", "conflicts": "conflict"}
        word = verb[outcome] if self.dry_run else outcome.removesuffix("s")
        if self.dry_run and outcome in ("created", "updated"):
            word = "would " + word
        self.out(f"{word:<13} {what}" + (f": {detail}" if detail else ""))

    def conflict(self, what: str, problem: str, fix: str) -> None:
        self.report("conflicts", what, f"{problem}. Fix: {fix}; nothing was changed for it")

    # -- the run -----------------------------------------------------------------------------

    def run(self) -> Outcome:
        for resource in self.tenant.resources:
            self.provision_resource(resource)
        existing_roles = list(self.api.list_all("/roles"))
        for role in self.tenant.roles:
            self.provision_role(role, existing_roles)
        apps_by_name: dict[str, list[Json]] = defaultdict(list)
        for found in self.api.list_all("/applications"):
            apps_by_name[str(found.get("name", ""))].append(found)
        for app in self.tenant.applications:
            self.provision_app(app, apps_by_name[app.name])
        if self.with_users:
            users = {str(u.get("username")): u for u in self.api.list_all("/users") if u.get("username")}
            for user in self.tenant.users:
                self.provision_user(user, users)
        return self.outcome

    def indicator(self, indicator: str) -> str:
        """The indicator as registered in this tenant (Logto's own Management API mapped)."""
        if indicator == OSS_MANAGEMENT_API_RESOURCE:
            return self.management_resource
        return indicator

    def is_logto_own(self, indicator: str) -> bool:
        return indicator in (OSS_MANAGEMENT_API_RESOURCE, self.management_resource)

    # -- resources and scopes ----------------------------------------------------------------

    def provision_resource(self, resource: Resource) -> None:
        indicator = self.indicator(resource.indicator)
        what = f"resource {indicator}"
        found = next((r for r in self._resources() if r.get("indicator") == indicator), None)
        if self.is_logto_own(resource.indicator):
            self.provision_logto_resource(resource, indicator, found)
            return
        if found is None:
            created = self.create(
                "/resources",
                body={
                    "name": resource.name,
                    "indicator": indicator,
                    "accessTokenTtl": resource.access_token_ttl,
                },
            )
            self.report("created", what, f"{resource.name!r}, token TTL {resource.access_token_ttl} s")
            resource_id = str(created["id"]) if created else PLANNED
            present: dict[str, str] = {}
        else:
            resource_id = str(found["id"])
            ttl = found.get("accessTokenTtl")
            if ttl != resource.access_token_ttl:
                if not self.dry_run:
                    self.api.send(
                        "PATCH",
                        "/resources/{}",
                        resource_id,
                        body={"accessTokenTtl": resource.access_token_ttl},
                    )
                self.report("updated", what, f"token TTL {ttl} s -> {resource.access_token_ttl} s")
            else:
                self.report("unchanged", what)
            present = self._scopes_of(resource_id)
        for scope in resource.scopes:
            scope_what = f"scope {scope.name} of {indicator}"
            if scope.name in present:
                self.scope_ids[(indicator, scope.name)] = present[scope.name]
                self.report("unchanged", scope_what)
                continue
            created = (
                None
                if resource_id == PLANNED
                else self.create(
                    "/resources/{}/scopes",
                    resource_id,
                    body={"name": scope.name, "description": scope.description or scope.name},
                )
            )
            self.scope_ids[(indicator, scope.name)] = str(created["id"]) if created else PLANNED
            self.report("created", scope_what)

    def provision_logto_resource(self, resource: Resource, indicator: str, found: Json | None) -> None:
        """Logto's own Management API: checked, never changed."""
        what = f"resource {indicator} (Logto Management API)"
        if found is None:
            self.conflict(
                what,
                "GET /api/resources does not list it",
                "check LOGTO_MANAGEMENT_API_RESOURCE; roles granting its permissions cannot be provisioned",
            )
            return
        self.report("unchanged", what, "Logto's own, only read")
        present = self._scopes_of(str(found["id"]))
        for scope in resource.scopes:
            scope_what = f"scope {scope.name} of {indicator}"
            if scope.name in present:
                self.scope_ids[(indicator, scope.name)] = present[scope.name]
                self.report("unchanged", scope_what)
            else:
                self.conflict(
                    scope_what,
                    "Logto's Management API has no such permission (its one permission is `all`)",
                    "remove it from the tenant file",
                )

    def _resources(self) -> list[Json]:
        if self._resource_list is None:
            self._resource_list = list(self.api.list_all("/resources"))
        return self._resource_list

    def _scopes_of(self, resource_id: str) -> dict[str, str]:
        return {str(s["name"]): str(s["id"]) for s in self.api.list_all("/resources/{}/scopes", resource_id)}

    # -- roles -------------------------------------------------------------------------------

    def provision_role(self, role: Role, existing: list[Json]) -> None:
        what = f'role "{role.name}"'
        wanted: dict[str, str] = {}  # scope id -> "name of indicator", for messages
        for file_indicator, names in role.scopes.items():
            indicator = self.indicator(file_indicator)
            for name in names:
                scope_id = self.scope_ids.get((indicator, name))
                if scope_id is None:
                    self.conflict(
                        what,
                        f"its permission {name} of {indicator} could not be provisioned (see above)",
                        "resolve that conflict first",
                    )
                    return
                wanted[scope_id if scope_id != PLANNED else f"{PLANNED}{indicator} {name}"] = name
        found = next((r for r in existing if r.get("name") == role.name), None)
        if found is None:
            body = {
                "name": role.name,
                "description": role.description or role.name,  # Logto requires one
                "type": M2M,
                "scopeIds": list(wanted),
            }
            created = self.create("/roles", body=body)  # a dry run sends nothing, planned ids included
            self.role_ids[role.name] = str(created["id"]) if created else f"{PLANNED} {role.name}"
            self.report("created", what, "machine-to-machine, " + _names(wanted.values()))
            return
        if found.get("type") != M2M:
            self.conflict(
                what,
                f"a role of that name exists with type {found.get('type')}, "
                "and Logto cannot change a role's type",
                "rename the role in the tenant file (and in the apps that use it), or rename or delete "
                "the existing role in the Console",
            )
            return
        role_id = str(found["id"])
        self.role_ids[role.name] = role_id
        present = {str(s["id"]) for s in self.api.list_all("/roles/{}/scopes", role_id)}
        missing = {scope_id: name for scope_id, name in wanted.items() if scope_id not in present}
        if not missing:
            self.report("unchanged", what)
            return
        if not self.dry_run:
            self.api.send("POST", "/roles/{}/scopes", role_id, body={"scopeIds": list(missing)})
        self.report("updated", what, "add " + _names(missing.values()))

    # -- applications ------------------------------------------------------------------------

    def provision_app(self, app: Application, same_name: list[Json]) -> None:
        name = app.name
        what = f'app "{name}"'
        m2m = [a for a in same_name if a.get("type") == M2M]
        if len(m2m) > 1:
            self.conflict(
                what,
                f"{len(m2m)} machine-to-machine apps have this name "
                f"({', '.join(str(a['id']) for a in m2m)}), so the one meant is unknown",
                "rename all but one in the Console",
            )
            return
        if not m2m and same_name:
            self.conflict(
                what,
                f"an app of that name exists with type {same_name[0].get('type')}, and Logto cannot change "
                "an app's type",
                "rename the app in the tenant file, or rename the existing app in the Console",
            )
            return
        role_ids = {}
        for role_name in app.roles:
            if role_name not in self.role_ids:
                self.conflict(
                    what, f'its role "{role_name}" could not be provisioned (see above)', "resolve that first"
                )
                return
            role_ids[self.role_ids[role_name]] = role_name
        if not m2m:
            created = self.create("/applications", body={"name": name, "type": M2M})
            app_id = str(created["id"]) if created else PLANNED
            if role_ids and app_id != PLANNED:
                self.api.send("POST", "/applications/{}/roles", app_id, body={"roleIds": list(role_ids)})
            self.report(
                "created", what, "machine-to-machine" + (", roles " + _names(app.roles) if app.roles else "")
            )
        else:
            app_id = str(m2m[0]["id"])
            present = {str(r["id"]) for r in self.api.list_all("/applications/{}/roles", app_id)}
            missing = {rid: role for rid, role in role_ids.items() if rid not in present}
            if missing:
                if not self.dry_run:
                    self.api.send("POST", "/applications/{}/roles", app_id, body={"roleIds": list(missing)})
                self.report("updated", what, f"{app_id}, assign roles " + _names(missing.values()))
            else:
                self.report("unchanged", what, app_id)
        if app.env is not None:
            self.collect_credentials(app.name, app.env, app_id)

    def collect_credentials(self, name: str, env: EnvNames, app_id: str) -> None:
        if app_id == PLANNED:
            self.outcome.env_planned += [env.id, env.secret]
            return
        secret = self._usable_secret(app_id)
        if secret is None:
            self.conflict(
                f'credentials of app "{name}"',
                "it has no unexpired App secret",
                f"add one in the Console (Applications -> {name} -> App secrets), then run again",
            )
            return
        self.outcome.env[env.id] = app_id
        self.outcome.env[env.secret] = secret

    def _usable_secret(self, app_id: str) -> str | None:
        """The "Default secret" Logto made with the app, else its newest unexpired secret."""
        try:
            secrets = [
                s for s in self.api.get_json("/applications/{}/secrets", app_id) if isinstance(s, dict)
            ]
        except ManagementApiError as exc:
            if exc.status != 404:
                raise
            # A Logto without the secrets API: the app's own ``secret`` field is the secret.
            legacy = self.api.get_json("/applications/{}", app_id).get("secret")
            usable = isinstance(legacy, str) and legacy and not legacy.startswith(INTERNAL_SECRET_PREFIX)
            return legacy if usable else None
        now_ms = time.time() * 1000
        alive = [
            s
            for s in secrets
            if isinstance(s.get("value"), str)
            and s["value"]
            and (s.get("expiresAt") is None or _number(s.get("expiresAt")) > now_ms)
        ]
        alive.sort(key=lambda s: (s.get("name") != DEFAULT_SECRET_NAME, -_number(s.get("createdAt"))))
        return str(alive[0]["value"]) if alive else None

    # -- users -------------------------------------------------------------------------------

    def provision_user(self, user: User, existing: dict[str, Json]) -> None:
        # The CLI made sure every user has a username (Logto assigns user ids).
        username = user.username or ""
        what = f"user {username}"
        found = existing.get(username)
        if found is not None:
            self.report("unchanged", what, str(found.get("id")))
            return
        body: Json = {"username": username}
        if user.name:
            body["name"] = user.name
        if user.primary_email:
            body["primaryEmail"] = user.primary_email
        if user.custom_data:
            body["customData"] = user.custom_data
        created = self.create("/users", body=body)
        self.report("created", what, str(created["id"]) if created else "")

    # -- plumbing ----------------------------------------------------------------------------

    def create(self, path: str, *ids: str, body: Json) -> Json | None:
        """POST a new object; None in a dry run."""
        if self.dry_run:
            return None
        try:
            created = self.api.send("POST", path, *ids, body=body)
        except ManagementApiError as exc:
            kind = KINDS.get(path.rsplit("/", 1)[-1], "object")
            key = body.get("indicator") or body.get("name") or body.get("username")
            raise ManagementApiError(
                f"creating {kind} {key!r} failed: {exc}", status=exc.status, code=exc.code
            ) from None
        if not isinstance(created, dict) or not isinstance(created.get("id"), str):
            raise ManagementApiError(
                f"POST {self.api.url(path, *ids)} answered without the new object's id: is LOGTO_ENDPOINT "
                "a Logto server?",
                status=200,
                code=None,
            )
        return created


def _names(names: Any) -> str:
    return ", ".join(str(n) for n in names) or "no permissions"


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) else 0.0
