"""From the bootstrap tenant (what a real tenant has before provisioning) to a provisioned one,
kept across restarts in the state directory."""

from __future__ import annotations

import json
import stat

from local_issuer.config import bootstrap_config_path
from tests.support import clean_env, free_port, run_script

from .conftest import MANAGEMENT
from .test_provisioning_api import Api, provision

BOOTSTRAP_ADMIN = ("m2m-bootstrap-admin", "bootstrap-admin-local-secret")


def test_bootstrap_tenant_holds_only_the_management_api(issuer_factory):
    issuer = issuer_factory("--config", str(bootstrap_config_path()))
    api = Api(issuer, BOOTSTRAP_ADMIN)
    assert [r["indicator"] for r in api.get("/resources").json()] == [MANAGEMENT]
    assert [r["name"] for r in api.get("/roles").json()] == ["Logto Management API access"]
    assert [a["id"] for a in api.get("/applications").json()] == [BOOTSTRAP_ADMIN[0]]
    secrets = api.get(f"/applications/{BOOTSTRAP_ADMIN[0]}/secrets").json()
    assert [(s["name"], s["value"]) for s in secrets] == [("Default secret", BOOTSTRAP_ADMIN[1])]


def test_what_the_api_creates_survives_a_restart(issuer_factory, tmp_path):
    state = tmp_path / "state"
    first = issuer_factory("--config", str(bootstrap_config_path()), state_dir=state)
    made = provision(Api(first, BOOTSTRAP_ADMIN))
    app_id = made["app"]["id"]
    secret = Api(first, BOOTSTRAP_ADMIN).get(f"/applications/{app_id}/secrets").json()[0]["value"]
    first.process.stop()

    state_file = state / "tenant.json"
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600  # it holds app secrets
    assert not list(state.glob(".tenant.json.*"))  # no temporary file left behind

    second = issuer_factory("--config", str(bootstrap_config_path()), state_dir=state, port=first.port)
    api = Api(second, BOOTSTRAP_ADMIN)
    assert api.get(f"/applications/{app_id}").json()["name"] == "stock app"
    assert [r["id"] for r in api.get(f"/applications/{app_id}/roles").json()] == [made["role"]["id"]]
    assert [s["name"] for s in api.get(f"/roles/{made['role']['id']}/scopes").json()] == ["read:stock"]
    response = second.token_response((app_id, secret), made["resource"]["indicator"], "read:stock")
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "read:stock"
    # The config's own objects are still there, once each.
    assert [r["indicator"] for r in api.get("/resources").json()] == [
        MANAGEMENT,
        made["resource"]["indicator"],
    ]


def test_a_broken_state_file_stops_the_start_with_one_line(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    (state / "tenant.json").write_text(json.dumps({"roles": [{"id": "x"}]}))
    result = run_script(
        "local-issuer", "--port", str(free_port()), "--state-dir", str(state), env=clean_env()
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"local-issuer: {state / 'tenant.json'}: not a tenant state file (TypeError); "
        "move it away to start from the config file alone"
    ]


def test_the_config_wins_a_natural_key_it_takes_later(issuer_factory, tmp_path):
    state = tmp_path / "state"
    first = issuer_factory("--config", str(bootstrap_config_path()), state_dir=state)
    made = provision(Api(first, BOOTSTRAP_ADMIN), "https://shopping.api")
    first.process.stop()
    # The demo config defines https://shopping.api too; started on it, the issuer keeps one resource
    # for that indicator, the config's, and the API-created role of the same state stays.
    second = issuer_factory(state_dir=state, port=first.port)
    api = Api(second)
    indicators = [r["indicator"] for r in api.get("/resources").json()]
    assert indicators.count("https://shopping.api") == 1
    shopping = next(r for r in api.get("/resources").json() if r["indicator"] == "https://shopping.api")
    assert shopping["id"] != made["resource"]["id"]
    assert made["role"]["id"] in [r["id"] for r in api.get("/roles", params={"page_size": 100}).json()]
