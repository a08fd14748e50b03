"""``logto-m2m provision``: set up a Logto tenant from a tenant file through the Management API.

Exit status: 0 done (or nothing to do), 1 stopped by an error (one line on stderr naming the fix),
2 bad command line, 3 done except for conflicts (each reported with what to do). The last line on
stdout is always ``created N, updated N, unchanged N, conflicts N``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from pydantic import Field, SecretStr, field_validator

from local_issuer.config import ConfigError, IssuerConfig, default_config_path, load_config
from logto_m2m.logto import OSS_MANAGEMENT_API_RESOURCE
from logto_m2m.settings import ProjectSettings, SettingsError, http_url, load_settings, resource_indicator
from logto_m2m.urls import redact_url

from .envfile import EnvFileError, check_writable, read_env, update_env
from .management import ManagementApi, ProvisionError
from .reconcile import Provisioner, Summary

EXIT_ERROR = 1
EXIT_CONFLICTS = 3


class ProvisionSettings(ProjectSettings):
    """Where Logto is and the bootstrap app: an M2M app holding the Management API's ``all``."""

    logto_endpoint: str = "http://127.0.0.1:3001"
    logto_admin_app_id: str = Field(min_length=1)
    logto_admin_app_secret: SecretStr
    logto_management_api_resource: str = OSS_MANAGEMENT_API_RESOURCE

    @field_validator("logto_endpoint")
    @classmethod
    def _url(cls, value: str) -> str:
        return http_url(value, strip_slash=True)

    @field_validator("logto_admin_app_secret")
    @classmethod
    def _secret(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value():
            raise ValueError("is required but empty")
        return value

    @field_validator("logto_management_api_resource", mode="before")
    @classmethod
    def _resource(cls, value: object) -> object:
        if value == "" or value is None:  # an empty line in .env: Logto OSS's indicator
            return OSS_MANAGEMENT_API_RESOURCE
        return resource_indicator(value) if isinstance(value, str) else value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="logto-m2m", description="Tools for Logto machine-to-machine setups."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    provision = commands.add_parser(
        "provision",
        help="create the tenant file's API resources, roles and apps in Logto; write app credentials",
        description=(
            "Make a Logto tenant hold what the tenant file describes, through the Management API, as "
            "the bootstrap app (LOGTO_ADMIN_APP_ID, LOGTO_ADMIN_APP_SECRET). Idempotent and additive: "
            "nothing the file does not mention is deleted or renamed."
        ),
    )
    provision.add_argument(
        "--tenant",
        type=Path,
        default=None,
        metavar="FILE",
        help="tenant file, YAML or JSON, in the local issuer's format (default: its packaged default.yaml)",
    )
    provision.add_argument(
        "--env-file",
        type=Path,
        default=Path(".env"),
        metavar="FILE",
        help="where the credentials of apps with `env:` are written, mode 0600 (default: .env)",
    )
    provision.add_argument("--dry-run", action="store_true", help="print the plan and change nothing")
    provision.add_argument("--with-users", action="store_true", help="also create the tenant file's users")
    return parser.parse_args(argv)


def load_tenant(path: Path | None, *, with_users: bool) -> IssuerConfig:
    """The tenant file, validated by the local issuer's parser, plus what provisioning needs."""
    tenant = load_config(path)
    source = str(path or default_config_path())
    for index, app in enumerate(tenant.applications):
        if not app.name:
            raise ConfigError(
                f"{source}: applications[{index}] ({app.id}): name is required (Logto assigns app ids, "
                "so provisioning matches apps by name)"
            )
    names = [app.name for app in tenant.applications]
    if duplicates := sorted({name for name in names if names.count(name) > 1}):
        raise ConfigError(f"{source}: applications: name used twice: {', '.join(duplicates)}")
    if with_users:
        for index, user in enumerate(tenant.users):
            if not user.username:
                raise ConfigError(
                    f"{source}: users[{index}] ({user.id}): username is required with --with-users "
                    "(Logto assigns user ids, so provisioning matches users by username)"
                )
    return tenant


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s", stream=sys.stderr)
    provisioner: Provisioner | None = None
    status = 0
    try:
        tenant = load_tenant(args.tenant, with_users=args.with_users)
        settings = load_settings(ProvisionSettings)
        api = ManagementApi(
            settings.logto_endpoint,
            settings.logto_admin_app_id,
            settings.logto_admin_app_secret.get_secret_value(),
            settings.logto_management_api_resource,
        )
        source = args.tenant or "the packaged tenant file (local_issuer/default.yaml)"
        endpoint = redact_url(settings.logto_endpoint)  # never a password from the URL
        print(
            f"{'Planning' if args.dry_run else 'Provisioning'} {source} into {endpoint} "
            f"(Management API {settings.logto_management_api_resource})"
        )
        if not args.dry_run and any(app.env for app in tenant.applications):
            check_writable(args.env_file)
        api.authenticate()
        provisioner = Provisioner(api, tenant, dry_run=args.dry_run, with_users=args.with_users)
        outcome = provisioner.run()
        write_credentials(args.env_file, outcome.env, outcome.env_planned, dry_run=args.dry_run)
        summary = outcome.summary
        if args.dry_run:
            print("Dry run: nothing was changed; the lines above are what a run would do.")
        elif not (summary.created or summary.updated or summary.conflicts):
            print("Nothing to change: the tenant already matches the tenant file.")
        if summary.conflicts:
            status = EXIT_CONFLICTS
    except (SettingsError, ConfigError, ProvisionError, EnvFileError) as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        _stopped(provisioner)
        status = EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr, flush=True)
        _stopped(provisioner)
        status = 130
    summary = provisioner.outcome.summary if provisioner else Summary()
    print(summary.line())
    return status


def _stopped(provisioner: Provisioner | None) -> None:
    summary = provisioner.outcome.summary if provisioner else Summary()
    if summary.created or summary.updated:
        print(
            "Stopped part-way: the lines above are what was done. Fix the error and run again; "
            "what exists is found, not created twice. No credentials were written."
        )
    else:
        print("Stopped: nothing was changed.")


def write_credentials(path: Path, values: dict[str, str], planned: list[str], *, dry_run: bool) -> None:
    """Write app credentials to the env file; name the variables, never the values."""
    if not values and not planned:
        return
    names = ", ".join(list(values) + planned)
    if dry_run:
        current = read_env(path)
        changed = [name for name, value in values.items() if current.get(name) != value] + planned
        if changed:
            print(f"{'would write':<13} {', '.join(changed)} to {path} (mode 0600, other lines kept)")
        else:
            print(f"{'unchanged':<13} {path} already holds {names}")
        return
    changed = update_env(path, values)
    if changed:
        print(f"{'wrote':<13} {', '.join(changed)} to {path} (mode 0600, other lines kept)")
    else:
        print(f"{'unchanged':<13} {path} already holds {names}")


if __name__ == "__main__":
    sys.exit(main())
