"""The compose stack, started for real on a Docker engine: what a user checks after `docker compose up`.

All services healthy; the README's curl through nginx; a worker run writing its report into the
reports volume; 50 slow clients not delaying /healthz; `docker compose stop` within seconds, every
program exiting cleanly; the issuer's key, the orders and the reports kept across `down` and `up`.

Runs where a Docker engine and compose v2 answer (skipped, saying why, elsewhere). The stack gets
its own project name, free host ports and its own proxy subnet, so it never meets a stack of yours.
The first run builds the image (about 30 s); the whole module takes two to three minutes.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.support import free_port, is_setting, issue_token
from tests.test_nginx import SLOW_CLIENTS, healthz_delay_under_slow_clients

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
_FOUND = shutil.which("docker")
ADMIN = ("m2m-admin", "admin-local-secret")
RESOURCE = "https://shopping.api"
SERVICES = {"postgres", "local-issuer", "shopping-api", "nginx", "stats-worker"}


def _engine_problem(docker: str | None) -> str | None:
    if docker is None:
        return "no docker CLI on PATH"
    info = subprocess.run([docker, "info", "--format", "{{.ServerVersion}}"], capture_output=True, timeout=30)
    if info.returncode != 0:
        return "no Docker engine answers (docker info failed)"
    compose = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30)
    if compose.returncode != 0:
        return "the docker compose v2 plugin is not installed"
    return None


_problem = _engine_problem(_FOUND)
if _problem or _FOUND is None:
    pytest.skip(f"compose stack not started: {_problem}", allow_module_level=True)
DOCKER: str = _FOUND


@dataclass
class Stack:
    project: str
    env_file: Path
    api_url: str
    issuer_url: str

    def compose(
        self, *args: str, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        # Only what docker itself needs from our environment: no project setting, no DOCKER_*/COMPOSE_*.
        env = {
            k: v
            for k, v in os.environ.items()
            if not (is_setting(k) or k.startswith(("COMPOSE_", "DOCKER_")))
        }
        if "DOCKER_HOST" in os.environ:
            env["DOCKER_HOST"] = os.environ["DOCKER_HOST"]
        result = subprocess.run(
            [DOCKER, "compose", "-p", self.project, "--env-file", str(self.env_file), *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check:
            assert result.returncode == 0, (
                f"docker compose {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
            )
        return result

    def up(self, *extra: str) -> None:
        self.compose("up", *extra, "-d", "--wait", "--wait-timeout", "300", timeout=600)

    def states(self) -> dict[str, tuple[str, str]]:
        """service -> (state, health) of every container of the project."""
        out = self.compose("ps", "--all", "--format", "json").stdout
        rows = [json.loads(line) for line in out.splitlines() if line.strip()]
        return {row["Service"]: (row["State"], row.get("Health", "")) for row in rows}

    def token(self, scope: str) -> str:
        token: str = issue_token(self.issuer_url, ADMIN, RESOURCE, scope)["access_token"]
        return token

    def kids(self) -> list[str]:
        return [key["kid"] for key in requests.get(f"{self.issuer_url}/oidc/jwks", timeout=10).json()["keys"]]

    def exec(self, service: str, *argv: str) -> subprocess.CompletedProcess[str]:
        return self.compose("exec", "-T", service, *argv, check=False)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("compose")
    api_port, issuer_port = free_port(), free_port()
    # The README's first step (cp .env.example .env), with free ports and a subnet of its own.
    env_file = workdir / ".env"
    env_file.write_text(
        (ROOT / ".env.example").read_text(encoding="utf-8")
        + "\n".join(
            [
                "",
                "COMPOSE_PROFILES=local",
                f"DOCKER_API_PORT={api_port}",
                f"DOCKER_ISSUER_PORT={issuer_port}",
                f"DOCKER_LOGTO_PUBLIC_ENDPOINT=http://localhost:{issuer_port}",
                f"DOCKER_PROXY_SUBNET=10.213.{random.randint(100, 250)}.0/28",
                "",
            ]
        ),
        encoding="utf-8",
    )
    stack = Stack(
        project=f"m2m-test-{os.getpid()}",
        env_file=env_file,
        api_url=f"http://127.0.0.1:{api_port}",
        issuer_url=f"http://localhost:{issuer_port}",
    )
    try:
        stack.up("--build")
        yield stack
    finally:
        stack.compose("down", "-v", "--remove-orphans", timeout=180, check=False)


def test_every_service_is_healthy(stack: Stack) -> None:
    states = stack.states()
    assert set(states) == SERVICES
    for service, (state, health) in states.items():
        assert (state, health) == ("running", "healthy"), service


def test_readme_curl_through_the_proxy(stack: Stack) -> None:
    token = stack.token("read:products write:products")
    response = requests.get(
        f"{stack.api_url}/products", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert response.status_code == 200, response.text
    assert response.headers["Server"].startswith("nginx")  # the published port is nginx's
    assert response.headers["X-Request-ID"]
    assert requests.get(f"{stack.api_url}/products", timeout=10).status_code == 401
    # One request id on both sides of the proxy, and no query string in either log.
    traced = requests.get(
        f"{stack.api_url}/products?limit=5",
        headers={"Authorization": f"Bearer {token}", "X-Request-ID": "compose-trace-1"},
        timeout=10,
    )
    assert traced.headers["X-Request-ID"] == "compose-trace-1"
    logs = stack.compose("logs", "--no-log-prefix", "nginx", "shopping-api").stdout
    lines = [line for line in logs.splitlines() if "compose-trace-1" in line]
    assert any("GET /products HTTP/1.1" in line for line in lines), lines  # nginx
    assert any("GET /products HTTP/1.0" in line for line in lines), lines  # gunicorn, behind nginx
    assert "limit=5" not in logs and token not in logs
    # Something nginx answers itself: JSON in the API's shape.
    too_large = requests.post(f"{stack.api_url}/products", data=b" " * 70_000, timeout=10)
    assert too_large.status_code == 413
    assert set(too_large.json()) == {"error", "error_description"}


def test_a_worker_run_writes_its_report(stack: Stack) -> None:
    token = stack.token("read:products write:products read:orders write:orders")
    headers = {"Authorization": f"Bearer {token}"}
    product = requests.post(
        f"{stack.api_url}/products",
        headers=headers,
        json={"sku": "MUG-COMPOSE", "name": "Blue Mug", "price": 1999, "currency": "USD"},
        timeout=10,
    )
    assert product.status_code == 201, product.text
    for customer in ("user-alice", "user-bob"):
        order = requests.post(
            f"{stack.api_url}/orders",
            headers=headers,
            json={"customer_id": customer, "items": [{"product_id": product.json()["id"], "quantity": 2}]},
            timeout=10,
        )
        assert order.status_code == 201, order.text
    today = dt.datetime.now(dt.UTC).date().isoformat()
    run = stack.exec("stats-worker", "stats-worker", "once", "--date", today)
    assert run.returncode == 0, run.stdout + run.stderr
    report = stack.exec("stats-worker", "cat", f"/data/reports/{today}.json")
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout)["orders"] == 2


def test_slow_clients_do_not_delay_healthz(stack: Stack) -> None:
    took = healthz_delay_under_slow_clients(stack.api_url)
    assert took < 3, f"/healthz took {took:.1f}s through compose's nginx with {SLOW_CLIENTS} slow clients"


def test_stop_is_quick_and_clean_and_state_survives_a_restart(stack: Stack) -> None:
    kids = stack.kids()
    token = stack.token("read:products")
    products = requests.get(
        f"{stack.api_url}/products", headers={"Authorization": f"Bearer {token}"}, timeout=10
    ).json()
    today = dt.datetime.now(dt.UTC).date().isoformat()

    started = time.monotonic()
    stack.compose("stop")
    took = time.monotonic() - started
    assert took < 20, f"docker compose stop took {took:.0f}s (a program ignoring SIGTERM waits out the 10 s)"
    ids = stack.compose("ps", "--all", "-q").stdout.split()
    exits = subprocess.run(
        [DOCKER, "inspect", "--format", "{{.Name}} {{.State.ExitCode}}", *ids],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert all(line.endswith(" 0") for line in exits), exits  # 137 would be a kill after the timeout

    stack.compose("down", timeout=180)  # containers gone, volumes kept
    stack.up()
    assert set(stack.states()) == SERVICES
    assert stack.kids() == kids  # tokens signed before the restart still verify
    again = requests.get(
        f"{stack.api_url}/products", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert again.status_code == 200 and again.json() == products
    assert stack.exec("stats-worker", "test", "-s", f"/data/reports/{today}.json").returncode == 0
