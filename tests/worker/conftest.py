"""Fixtures for the stats worker's tests: fake Logto and shopping API servers, worker settings."""

from __future__ import annotations

import pytest

from logto_m2m.http import make_session
from stats_worker.token_client import TokenClient

from .fakes import FakeServer, TokenEndpoint

APP_ID = "m2m-test"
SECRET = "s3cret:with%odd chars"


@pytest.fixture
def token_endpoint():
    return TokenEndpoint(APP_ID, SECRET)


@pytest.fixture
def logto(token_endpoint):
    """A real HTTP server playing Logto's token endpoint."""
    with FakeServer(token_endpoint) as server:
        yield server


def quick_session(**overrides):
    """A session like the worker's, with retries that do not sleep long."""
    options = {"retries": 3, "backoff_factor": 0.0, "timeout": (1.0, 2.0)}
    options.update(overrides)
    return make_session(**options)


@pytest.fixture
def token_client(logto):
    return TokenClient(
        logto.url + "/oidc/token", APP_ID, SECRET, session=quick_session(allowed_methods=("POST",))
    )


@pytest.fixture
def worker_env(monkeypatch, tmp_path, logto):
    """Settings for an in-process worker pointed at the fake Logto; returns a setter for more."""
    values = {
        "LOGTO_ENDPOINT": logto.url,
        "LOGTO_APP_ID": APP_ID,
        "LOGTO_APP_SECRET": SECRET,
        "REPORTS_DIR": str(tmp_path / "reports"),
        "STATS_HTTP_BACKOFF_SECONDS": "0",
        "STATS_HTTP_RETRIES": "2",
        "STATS_HTTP_TIMEOUT_SECONDS": "2",
    }

    def set_env(**more: str) -> dict[str, str]:
        values.update(more)
        for name, value in values.items():
            monkeypatch.setenv(name, value)
        return values

    set_env()
    return set_env
