"""A real ``local-issuer`` started from the bootstrap-only tenant, and ``logto-m2m provision`` run on it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from local_issuer.config import bootstrap_config_path, default_config_path
from logto_m2m.provision.cli import main
from tests.support import ServerProcess, clean_env, free_port, is_setting, issue_token, script

BOOTSTRAP_TENANT = bootstrap_config_path()
FULL_TENANT = default_config_path()
BOOTSTRAP_APP = ("m2m-bootstrap-admin", "bootstrap-admin-local-secret")
MANAGEMENT = "https://default.logto.app/api"


@dataclass
class Issuer:
    process: ServerProcess
    url: str

    def token(
        self, client: tuple[str, str] = BOOTSTRAP_APP, resource: str = MANAGEMENT, scope: str = "all"
    ) -> str:
        return issue_token(self.url, client, resource, scope)["access_token"]

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token()}"}
        return requests.request(method, f"{self.url}/api{path}", headers=headers, timeout=10, **kwargs)

    def listing(self, path: str) -> list[dict]:
        response = self.api("GET", path, params={"page": 1, "page_size": 100})
        assert response.status_code == 200, response.text
        return response.json()

    def snapshot(self) -> dict:
        """Everything provisioning could touch, to compare before and after a run."""
        resources = self.listing("/resources")
        roles = self.listing("/roles")
        apps = self.listing("/applications")
        return {
            "resources": resources,
            "scopes": {r["id"]: self.listing(f"/resources/{r['id']}/scopes") for r in resources},
            "roles": roles,
            "role_scopes": {r["id"]: self.listing(f"/roles/{r['id']}/scopes") for r in roles},
            "apps": apps,
            "app_roles": {a["id"]: self.listing(f"/applications/{a['id']}/roles") for a in apps},
            "users": self.listing("/users"),
        }


def start_issuer(root: Path, config: Path = BOOTSTRAP_TENANT) -> Issuer:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    state = root / f"issuer-{port}"
    state.mkdir(parents=True)
    process = ServerProcess(
        [script("local-issuer"), "--port", str(port), "--state-dir", str(state), "--config", str(config)],
        env=clean_env(),
        cwd=root,
        log_path=root / f"issuer-{port}.log",
        ready_url=f"{url}/oidc/.well-known/openid-configuration",
    ).start()
    return Issuer(process, url)


@pytest.fixture
def fresh_issuer(tmp_path):
    """A local issuer in the bootstrap state of a real tenant, for one test."""
    issuer = start_issuer(tmp_path)
    yield issuer
    issuer.process.stop()


@dataclass
class Run:
    status: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()


@pytest.fixture
def provision(monkeypatch, capsys, tmp_path):
    """Run ``logto-m2m provision`` in this process, settings from the environment, cwd = tmp_path."""
    monkeypatch.chdir(tmp_path)  # no developer .env is read

    def run(issuer: Issuer | None, *args: str, **settings: str | None) -> Run:
        for name in [name for name in os.environ if is_setting(name)]:
            monkeypatch.delenv(name)  # a developer's shell must not change what the test sees
        values = {
            "LOGTO_ADMIN_APP_ID": BOOTSTRAP_APP[0],
            "LOGTO_ADMIN_APP_SECRET": BOOTSTRAP_APP[1],
            **({"LOGTO_ENDPOINT": issuer.url} if issuer else {}),
            **settings,
        }
        for name, value in values.items():
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        capsys.readouterr()
        status = main(["provision", *args])
        captured = capsys.readouterr()
        return Run(status, captured.out, captured.err)

    return run
