"""Fixtures for the local issuer: real ``local-issuer`` processes (gunicorn) on free ports."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.support import ServerProcess, clean_env, free_port, script

CAPTURES = Path(__file__).resolve().parents[1] / "logto_captures"
SHOPPING = "https://shopping.api"
MANAGEMENT = "https://default.logto.app/api"
STATS_WORKER = ("m2m-stats-worker", "stats-worker-local-secret")
ADMIN = ("m2m-admin", "admin-local-secret")


@dataclass
class RunningIssuer:
    """A started ``local-issuer``: where it listens and what it calls itself."""

    process: ServerProcess
    base_url: str  # where to reach it
    endpoint: str  # what it puts in iss (``{endpoint}/oidc``)
    state_dir: Path

    @property
    def issuer(self) -> str:
        return f"{self.endpoint}/oidc"

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/oidc/token"

    def token_response(self, client=STATS_WORKER, resource=SHOPPING, scope=None, **form) -> requests.Response:
        data = {"grant_type": "client_credentials", **form}
        if resource is not None:
            data["resource"] = resource
        if scope is not None:
            data["scope"] = scope
        return requests.post(self.token_url, data=data, auth=client, timeout=10)

    def token(self, client=STATS_WORKER, resource=SHOPPING, scope=None) -> str:
        response = self.token_response(client, resource, scope)
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    def jwks(self) -> KeySet:
        return KeySet.import_key_set(requests.get(f"{self.base_url}/oidc/jwks", timeout=10).json())

    def verify(self, token: str) -> jwt.Token:
        return jwt.decode(token, self.jwks(), algorithms=["ES384"])

    def log_text(self) -> str:
        return self.process.log_text()


def start_issuer(
    state_dir: Path,
    *args: str,
    endpoint: str | None = None,
    port: int | None = None,
    env: dict[str, str] | None = None,
) -> RunningIssuer:
    port = port or free_port()
    state_dir.mkdir(parents=True, exist_ok=True)
    argv = [script("local-issuer"), "--port", str(port), "--state-dir", str(state_dir), *args]
    if endpoint:
        argv += ["--endpoint", endpoint]
    base_url = f"http://127.0.0.1:{port}"
    process = ServerProcess(
        argv,
        env=clean_env(**(env or {})),
        ready_url=f"{base_url}/oidc/.well-known/openid-configuration",
        cwd=state_dir.parent,
        log_path=state_dir.parent / f"issuer-{port}.log",
    )
    process.start()
    return RunningIssuer(process, base_url, endpoint or base_url, state_dir)


@pytest.fixture
def issuer_factory(tmp_path):
    """Start issuers on demand (``issuer_factory(*args, state_dir=..., endpoint=...)``); all stopped after."""
    started: list[RunningIssuer] = []

    def start(*args: str, state_dir: Path | None = None, **kwargs) -> RunningIssuer:
        running = start_issuer(state_dir or tmp_path / "state", *args, **kwargs)
        started.append(running)
        return running

    yield start
    for running in started:
        running.process.stop()


@pytest.fixture(scope="module")
def issuer(tmp_path_factory):
    """One issuer with the packaged demo config, shared by a test module."""
    running = start_issuer(tmp_path_factory.mktemp("issuer") / "state")
    yield running
    running.process.stop()


def load_capture(name: str) -> dict:
    return json.loads((CAPTURES / name).read_text())
