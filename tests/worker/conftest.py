"""Fixtures for the stats worker's tests: fake Logto and shopping API servers, worker settings."""

from __future__ import annotations

import pytest

from logto_m2m.http import make_session
from logto_m2m.settings import load_settings
from stats_worker.config import WorkerSettings
from stats_worker.job import ReportJob
from stats_worker.scheduler import DailyScheduler
from stats_worker.token_client import TokenClient

from .fakes import FakeServer, TokenEndpoint
from .stack import Stack, start_stack

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


# -- a real issuer and API, for end-to-end tests and new jobs ---------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """``local-issuer`` and the shopping API (gunicorn, seeded SQLite), shared by a test module."""
    stack, processes = start_stack(tmp_path_factory.mktemp("stack"))
    yield stack
    for process in processes:
        process.stop()


@pytest.fixture
def report_job(stack: Stack, monkeypatch) -> ReportJob:
    """The worker's ReportJob, in process, with the settings of a worker pointed at ``stack``."""
    for name, value in stack.env().items():
        monkeypatch.setenv(name, value)
    return ReportJob(load_settings(WorkerSettings))


@pytest.fixture
def scheduler(report_job: ReportJob) -> DailyScheduler:
    """The worker's scheduler with its jobs added (``schedule()``), not started."""
    scheduler = DailyScheduler(report_job)
    scheduler.schedule()
    return scheduler
