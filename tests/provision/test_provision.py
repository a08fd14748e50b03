"""``logto-m2m provision`` against a real local issuer that starts in a real tenant's bootstrap state.

From bootstrap-only to a tenant the stats worker runs against; a second run changes nothing; a dry
run changes nothing; conflicts are reported and left alone; each setup error is one line naming
the fix. The local issuer answers the Management API with Logto's shapes and status codes.
"""

from __future__ import annotations

import datetime as dt
import json
import stat

import pytest
import yaml
from dotenv import dotenv_values

from tests.support import ServerProcess, clean_env, free_port, gunicorn_argv, issue_token, run_script
from tests.worker.fakes import FakeServer, Reply

from .conftest import BOOTSTRAP_APP, BOOTSTRAP_TENANT, FULL_TENANT, MANAGEMENT, start_issuer

SHOPPING = "https://shopping.api"
#: default.yaml on the bootstrap tenant: Shopping API + 4 scopes, 2 roles, 2 apps created; Logto's
#: Management API, its `all` scope and its access role found.
FIRST_RUN = "created 9, updated 0, unchanged 3, conflicts 0"
SECOND_RUN = "created 0, updated 0, unchanged 12, conflicts 0"
ENV_NAMES = {"LOGTO_APP_ID", "LOGTO_APP_SECRET", "SHOPPING_ADMIN_APP_ID", "SHOPPING_ADMIN_APP_SECRET"}


def assert_no_secret(output: str, *secrets: str) -> None:
    for secret in (BOOTSTRAP_APP[1], *secrets):
        assert secret not in output
    assert "eyJ" not in output  # no token either


@pytest.fixture(scope="module")
def provisioned(tmp_path_factory):
    """One issuer provisioned with default.yaml (and its users) by a real `logto-m2m` process."""
    root = tmp_path_factory.mktemp("provisioned")
    issuer = start_issuer(root)
    before = issuer.snapshot()
    result = run_script(
        "logto-m2m",
        "provision",
        "--env-file",
        str(root / ".env"),
        "--with-users",
        env=clean_env(
            LOGTO_ENDPOINT=issuer.url,
            LOGTO_ADMIN_APP_ID=BOOTSTRAP_APP[0],
            LOGTO_ADMIN_APP_SECRET=BOOTSTRAP_APP[1],
        ),
        cwd=root,
    )
    yield issuer, root, before, result
    issuer.process.stop()


def test_first_run_creates_the_tenant_and_writes_credentials(provisioned):
    issuer, root, before, result = provisioned
    assert result.returncode == 0, result.stdout + result.stderr
    assert [r["indicator"] for r in before["resources"]] == [MANAGEMENT]
    assert [a["name"] for a in before["apps"]] == ["Bootstrap admin"]
    lines = result.stdout.splitlines()
    assert lines[-1] == "created 13, updated 0, unchanged 3, conflicts 0"  # FIRST_RUN + 4 users
    assert "created       resource https://shopping.api: 'Shopping API', token TTL 3600 s" in lines
    assert (
        "unchanged     resource https://default.logto.app/api (Logto Management API): Logto's own, only read"
        in lines
    )
    assert 'created       role "Shopping reader": machine-to-machine, read:products, read:orders' in lines
    assert 'unchanged     role "Logto Management API access"' in lines
    env_path = root / ".env"
    assert stat.S_IMODE(env_path.stat().st_mode) == 0o600
    env = dotenv_values(env_path)
    assert set(env) == ENV_NAMES
    assert any(line.startswith("wrote") and str(env_path) in line for line in lines)
    assert_no_secret(result.stdout + result.stderr, env["LOGTO_APP_SECRET"], env["SHOPPING_ADMIN_APP_SECRET"])

    after = issuer.snapshot()
    assert [r["indicator"] for r in after["resources"]] == [MANAGEMENT, SHOPPING]
    apps = {a["name"]: a for a in after["apps"]}
    assert apps["Stats worker"]["id"] == env["LOGTO_APP_ID"]
    assert {r["name"] for r in after["app_roles"][env["LOGTO_APP_ID"]]} == {
        "Shopping reader",
        "Logto Management API access",
    }
    assert sorted(u["username"] for u in after["users"]) == ["alice", "bob", "carol", "dave"]

    # The credentials written are ones Logto accepts, with HTTP Basic, and grant what the roles hold.
    worker = (env["LOGTO_APP_ID"], env["LOGTO_APP_SECRET"])
    admin = (env["SHOPPING_ADMIN_APP_ID"], env["SHOPPING_ADMIN_APP_SECRET"])
    assert granted(issuer, worker, SHOPPING, "read:orders write:orders") == "read:orders"
    assert granted(issuer, admin, SHOPPING, "write:products read:orders") == "write:products read:orders"
    assert granted(issuer, worker, MANAGEMENT, "all") == "all"


def granted(issuer, client: tuple[str, str], resource: str, scope: str) -> str:
    return issue_token(issuer.url, client, resource, scope).get("scope", "")


def test_second_run_changes_nothing_and_says_so(provisioned, provision):
    issuer, root, _, _ = provisioned
    env_path = root / ".env"
    env_before = env_path.read_bytes(), env_path.stat().st_mtime_ns
    state_before = issuer.snapshot()
    run = provision(issuer, "--env-file", str(env_path), "--with-users")
    assert run.status == 0, run.out + run.err
    assert run.lines[-1] == "created 0, updated 0, unchanged 16, conflicts 0"
    assert run.lines[-2] == "Nothing to change: the tenant already matches the tenant file."
    assert f"unchanged     {env_path} already holds" in run.out
    assert issuer.snapshot() == state_before
    assert (env_path.read_bytes(), env_path.stat().st_mtime_ns) == env_before


def test_stats_worker_runs_against_the_provisioned_tenant(provisioned, tmp_path):
    issuer, root, _, _ = provisioned
    env = dotenv_values(root / ".env")
    day = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    api_port = free_port()
    api_url = f"http://127.0.0.1:{api_port}"
    api_env = clean_env(DATABASE_URL=f"sqlite:///{tmp_path / 'shop.sqlite'}", LOGTO_ENDPOINT=issuer.url)
    seeded = run_script(
        "flask",
        "--app",
        "shopping_api",
        "seed",
        "--orders",
        "40",
        "--date",
        str(day),
        env=api_env,
        timeout=120,
    )
    assert seeded.returncode == 0, seeded.stdout + seeded.stderr
    with ServerProcess(
        gunicorn_argv(api_port, workers=1),
        env=api_env,
        cwd=tmp_path,
        log_path=tmp_path / "api.log",
        ready_url=f"{api_url}/healthz",
    ):
        result = run_script(
            "stats-worker",
            "once",
            "--date",
            str(day),
            env=clean_env(
                LOGTO_ENDPOINT=issuer.url,
                LOGTO_APP_ID=env["LOGTO_APP_ID"],
                LOGTO_APP_SECRET=env["LOGTO_APP_SECRET"],
                SHOPPING_API_URL=api_url,
                REPORTS_DIR=str(tmp_path / "reports"),
                LOGTO_MANAGEMENT_API_RESOURCE=MANAGEMENT,
            ),
            timeout=120,
        )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "reports" / f"{day}.json").read_text())
    assert report["orders"] == 40


def test_dry_run_prints_the_plan_and_changes_nothing(fresh_issuer, provision, tmp_path):
    before = fresh_issuer.snapshot()
    run = provision(fresh_issuer, "--dry-run", "--env-file", str(tmp_path / "creds.env"))
    assert run.status == 0, run.out + run.err
    assert run.lines[-1] == FIRST_RUN
    assert run.lines[-2] == "Dry run: nothing was changed; the lines above are what a run would do."
    assert "would create  resource https://shopping.api: 'Shopping API', token TTL 3600 s" in run.lines
    assert "would create  scope write:orders of https://shopping.api" in run.lines
    assert (
        'would create  app "Stats worker": machine-to-machine, '
        "roles Shopping reader, Logto Management API access" in run.lines
    )
    assert any(line.startswith("would write   LOGTO_APP_ID, LOGTO_APP_SECRET") for line in run.lines)
    assert fresh_issuer.snapshot() == before
    assert not (tmp_path / "creds.env").exists()


def test_dry_run_of_a_provisioned_tenant_plans_nothing(provisioned, provision):
    issuer, root, _, _ = provisioned
    run = provision(issuer, "--dry-run", "--env-file", str(root / ".env"))
    assert run.status == 0, run.out + run.err
    assert run.lines[-1] == SECOND_RUN
    assert not any(line.startswith("would") for line in run.lines)


def test_a_changed_ttl_is_updated_and_what_the_file_does_not_mention_is_kept(
    fresh_issuer, provision, tmp_path
):
    assert provision(fresh_issuer, "--env-file", str(tmp_path / ".env")).status == 0
    resource = next(r for r in fresh_issuer.listing("/resources") if r["indicator"] == SHOPPING)
    assert fresh_issuer.api("PATCH", f"/resources/{resource['id']}", json={"accessTokenTtl": 600}).ok
    extra = fresh_issuer.api(
        "POST", f"/resources/{resource['id']}/scopes", json={"name": "delete:orders", "description": "extra"}
    ).json()
    reader = next(r for r in fresh_issuer.listing("/roles") if r["name"] == "Shopping reader")
    assert fresh_issuer.api("POST", f"/roles/{reader['id']}/scopes", json={"scopeIds": [extra["id"]]}).ok
    other = fresh_issuer.api(
        "POST", "/roles", json={"name": "Other", "description": "x", "type": "MachineToMachine"}
    )
    assert other.ok

    run = provision(fresh_issuer, "--env-file", str(tmp_path / ".env"))
    assert run.status == 0, run.out + run.err
    assert run.lines[-1] == "created 0, updated 1, unchanged 11, conflicts 0"
    assert "updated       resource https://shopping.api: token TTL 600 s -> 3600 s" in run.lines
    scopes = {s["name"] for s in fresh_issuer.listing(f"/resources/{resource['id']}/scopes")}
    assert "delete:orders" in scopes
    assert "delete:orders" in {s["name"] for s in fresh_issuer.listing(f"/roles/{reader['id']}/scopes")}
    assert "Other" in {r["name"] for r in fresh_issuer.listing("/roles")}


def test_a_role_missing_a_scope_and_an_app_missing_a_role_are_completed(fresh_issuer, provision, tmp_path):
    smaller = yaml.safe_load(FULL_TENANT.read_text())
    smaller["roles"][0]["scopes"]["https://shopping.api"] = ["read:products"]  # Shopping reader
    smaller["applications"][0]["roles"] = ["Logto Management API access"]  # Stats worker
    (tmp_path / "smaller.yaml").write_text(yaml.safe_dump(smaller))
    assert provision(fresh_issuer, "--tenant", str(tmp_path / "smaller.yaml")).status == 0
    worker_id = dotenv_values(tmp_path / ".env")["LOGTO_APP_ID"]

    run = provision(fresh_issuer)
    assert run.status == 0, run.out + run.err
    assert run.lines[-1] == "created 0, updated 2, unchanged 10, conflicts 0"
    assert 'updated       role "Shopping reader": add read:orders' in run.lines
    assert f'updated       app "Stats worker": {worker_id}, assign roles Shopping reader' in run.lines
    reader = next(r for r in fresh_issuer.listing("/roles") if r["name"] == "Shopping reader")
    assert {s["name"] for s in fresh_issuer.listing(f"/roles/{reader['id']}/scopes")} == {
        "read:products",
        "read:orders",
    }


def test_two_apps_of_one_name_are_a_conflict_left_alone(fresh_issuer, provision, tmp_path):
    for _ in range(2):
        assert fresh_issuer.api(
            "POST", "/applications", json={"name": "Stats worker", "type": "MachineToMachine"}
        ).ok
    before_apps = fresh_issuer.listing("/applications")
    run = provision(fresh_issuer, "--env-file", str(tmp_path / ".env"))
    assert run.status == 3
    assert run.lines[-1] == "created 8, updated 0, unchanged 3, conflicts 1"
    conflict = next(line for line in run.lines if line.startswith("conflict"))
    assert conflict.startswith('conflict      app "Stats worker": 2 machine-to-machine apps have this name')
    assert "Fix: rename all but one in the Console; nothing was changed for it" in conflict
    workers = [a for a in fresh_issuer.listing("/applications") if a["name"] == "Stats worker"]
    assert sorted(a["id"] for a in workers) == sorted(
        a["id"] for a in before_apps if a["name"] == "Stats worker"
    )
    assert all(fresh_issuer.listing(f"/applications/{a['id']}/roles") == [] for a in workers)
    assert set(dotenv_values(tmp_path / ".env")) == {"SHOPPING_ADMIN_APP_ID", "SHOPPING_ADMIN_APP_SECRET"}


def test_a_user_role_of_the_same_name_is_a_conflict_and_so_are_its_apps(fresh_issuer, provision, tmp_path):
    created = fresh_issuer.api(
        "POST", "/roles", json={"name": "Shopping reader", "description": "people", "type": "User"}
    )
    assert created.ok, created.text
    run = provision(fresh_issuer, "--env-file", str(tmp_path / ".env"))
    assert run.status == 3
    assert run.lines[-1] == "created 7, updated 0, unchanged 3, conflicts 2"
    conflicts = [line for line in run.lines if line.startswith("conflict")]
    assert conflicts[0].startswith(
        'conflict      role "Shopping reader": a role of that name exists with type User'
    )
    assert conflicts[1].startswith(
        'conflict      app "Stats worker": its role "Shopping reader" could not be provisioned'
    )
    role = next(r for r in fresh_issuer.listing("/roles") if r["name"] == "Shopping reader")
    assert role["type"] == "User" and fresh_issuer.listing(f"/roles/{role['id']}/scopes") == []


# -- errors: one line on stderr naming the fix, exit status 1, the summary still last --------------


def assert_stopped(run, message: str) -> None:
    assert run.status == 1
    errors = run.err.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("error: ") and message in errors[0], run.err
    assert run.lines[-2:] == [
        "Stopped: nothing was changed.",
        "created 0, updated 0, unchanged 0, conflicts 0",
    ]
    assert_no_secret(run.out + run.err)


def test_bootstrap_app_without_the_management_role(tmp_path, provision):
    tenant = tmp_path / "no-role.yaml"
    text = BOOTSTRAP_TENANT.read_text()
    tenant.write_text(text.replace("    roles: [Logto Management API access]\n", "    roles: []\n"))
    issuer = start_issuer(tmp_path, tenant)
    try:
        run = provision(issuer, "--env-file", str(tmp_path / ".env"))
    finally:
        issuer.process.stop()
    assert_stopped(run, 'assign it the machine-to-machine role "Logto Management API access"')
    assert not (tmp_path / ".env").exists()


def test_wrong_endpoint(provision, tmp_path):
    run = provision(
        None, "--env-file", str(tmp_path / ".env"), LOGTO_ENDPOINT=f"http://127.0.0.1:{free_port()}"
    )
    assert_stopped(run, "cannot reach Logto at http://127.0.0.1:")
    assert "check LOGTO_ENDPOINT" in run.err


@pytest.mark.parametrize("dry_run", [(), ("--dry-run",)])
def test_a_password_in_the_endpoint_url_is_never_shown(provision, tmp_path, dry_run):
    port = free_port()
    run = provision(
        None,
        *dry_run,
        "--env-file",
        str(tmp_path / ".env"),
        LOGTO_ENDPOINT=f"http://user:hunter2@127.0.0.1:{port}",
    )
    assert run.status != 0
    assert "hunter2" not in run.out + run.err
    assert f"http://***@127.0.0.1:{port}" in run.out + run.err


def test_a_server_that_is_not_logto(provision, tmp_path):
    """Something answers on LOGTO_ENDPOINT, but not as Logto: an HTML 404 for the token request."""
    with FakeServer(lambda request: Reply(404, b"<html>Not Found</html>")) as other:
        run = provision(None, "--env-file", str(tmp_path / ".env"), LOGTO_ENDPOINT=other.url)
    assert_stopped(run, f"{other.url}/oidc/token is not a Logto token endpoint (HTTP 404)")
    assert "without /oidc or /api" in run.err


def test_wrong_bootstrap_secret(fresh_issuer, provision, tmp_path):
    run = provision(fresh_issuer, "--env-file", str(tmp_path / ".env"), LOGTO_ADMIN_APP_SECRET="not-it")
    assert_stopped(run, "Logto refused the bootstrap app's credentials (invalid_client)")
    assert "LOGTO_ADMIN_APP_ID and LOGTO_ADMIN_APP_SECRET" in run.err


def test_endpoint_with_the_oidc_path(fresh_issuer, provision, tmp_path):
    run = provision(
        fresh_issuer, "--env-file", str(tmp_path / ".env"), LOGTO_ENDPOINT=fresh_issuer.url + "/oidc"
    )
    assert_stopped(run, f"{fresh_issuer.url}/oidc/oidc/token is not a Logto token endpoint")
    assert "set LOGTO_ENDPOINT to the Logto base URL, without /oidc or /api" in run.err


def test_management_api_indicator_of_another_tenant(fresh_issuer, provision, tmp_path):
    before = fresh_issuer.snapshot()
    run = provision(
        fresh_issuer,
        "--env-file",
        str(tmp_path / ".env"),
        LOGTO_MANAGEMENT_API_RESOURCE="https://abc123.logto.app/api",
    )
    assert_stopped(
        run, "LOGTO_MANAGEMENT_API_RESOURCE=https://abc123.logto.app/api is not a resource of the tenant"
    )
    assert "https://default.logto.app/api" in run.err
    assert fresh_issuer.snapshot() == before


def test_invalid_tenant_file(fresh_issuer, provision, tmp_path):
    tenant = tmp_path / "tenant.yaml"
    tenant.write_text("roles:\n  - name: R\n    scopes: {https://nowhere.api: [read]}\n")
    before = fresh_issuer.snapshot()
    run = provision(fresh_issuer, "--tenant", str(tenant))
    assert_stopped(run, f"{tenant}: roles[0] (R): unknown resource 'https://nowhere.api'")
    assert fresh_issuer.snapshot() == before


def test_app_without_a_name_is_an_invalid_tenant_file(provision, tmp_path):
    tenant = tmp_path / "tenant.yaml"
    tenant.write_text("applications:\n  - id: a1\n    secret: local-secret\n")
    run = provision(None, "--tenant", str(tenant))
    assert_stopped(run, "applications[0] (a1): name is required")


def test_missing_bootstrap_credentials(provision):
    run = provision(None, LOGTO_ADMIN_APP_ID=None, LOGTO_ADMIN_APP_SECRET=None)
    assert_stopped(
        run, "LOGTO_ADMIN_APP_ID: is required but not set; LOGTO_ADMIN_APP_SECRET: is required but not set"
    )


def test_env_file_that_cannot_be_written_stops_before_any_change(fresh_issuer, provision, tmp_path):
    before = fresh_issuer.snapshot()
    (tmp_path / "a-directory").mkdir()
    run = provision(fresh_issuer, "--env-file", str(tmp_path / "a-directory"))
    assert_stopped(run, "a-directory: is a directory; --env-file must name a file")
    assert fresh_issuer.snapshot() == before


def test_an_error_part_way_says_what_was_done_and_a_rerun_completes(fresh_issuer, provision, tmp_path):
    tenant = yaml.safe_load(FULL_TENANT.read_text())
    long_name = "Shopping reader " + "x" * 120  # Logto's role names are at most 128 characters
    tenant["roles"][0]["name"] = long_name
    tenant["applications"][0]["roles"] = [long_name]
    (tmp_path / "tenant.yaml").write_text(yaml.safe_dump(tenant))
    run = provision(fresh_issuer, "--tenant", str(tmp_path / "tenant.yaml"))
    assert run.status == 1
    assert run.err.startswith(f"error: creating role '{long_name}' failed: POST ")
    assert "answered HTTP 400 (guard.invalid_input" in run.err
    assert run.lines[-2:] == [
        "Stopped part-way: the lines above are what was done. Fix the error and run again; "
        "what exists is found, not created twice. No credentials were written.",
        "created 5, updated 0, unchanged 2, conflicts 0",
    ]
    assert [line.split()[0] for line in run.lines[1:-2]] == ["created"] * 5 + ["unchanged"] * 2
    assert not (tmp_path / ".env").exists()

    rerun = provision(fresh_issuer)  # the file fixed: the packaged one
    assert rerun.status == 0, rerun.out + rerun.err
    assert rerun.lines[-1] == "created 4, updated 0, unchanged 8, conflicts 0"


def test_lists_are_read_past_the_first_page(fresh_issuer, provision, tmp_path):
    scopes = [f"scope:{n:03}" for n in range(150)]  # Logto's pages hold at most 100
    tenant = {"resources": [{"name": "Many", "indicator": "https://many.api", "scopes": scopes}]}
    (tmp_path / "many.yaml").write_text(yaml.safe_dump(tenant))
    first = provision(fresh_issuer, "--tenant", str(tmp_path / "many.yaml"))
    assert first.lines[-1] == "created 151, updated 0, unchanged 0, conflicts 0", first.out + first.err
    again = provision(fresh_issuer, "--tenant", str(tmp_path / "many.yaml"))
    assert again.lines[-1] == "created 0, updated 0, unchanged 151, conflicts 0", again.out + again.err


def test_dry_run_names_every_role_an_existing_app_would_get(fresh_issuer, provision, tmp_path):
    tenant = yaml.safe_load(FULL_TENANT.read_text())
    smaller = {**tenant, "roles": tenant["roles"][2:], "applications": [dict(tenant["applications"][0])]}
    smaller["applications"][0]["roles"] = ["Logto Management API access"]
    (tmp_path / "smaller.yaml").write_text(yaml.safe_dump(smaller))
    assert provision(fresh_issuer, "--tenant", str(tmp_path / "smaller.yaml")).status == 0
    worker_id = dotenv_values(tmp_path / ".env")["LOGTO_APP_ID"]
    tenant["applications"][0]["roles"] = ["Shopping reader", "Shopping admin", "Logto Management API access"]
    (tmp_path / "bigger.yaml").write_text(yaml.safe_dump(tenant))

    run = provision(fresh_issuer, "--tenant", str(tmp_path / "bigger.yaml"), "--dry-run")
    assert run.status == 0, run.out + run.err
    assert (
        f'would update  app "Stats worker": {worker_id}, assign roles Shopping reader, Shopping admin'
        in run.lines
    )
