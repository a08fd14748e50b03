"""A full ``stats-worker once`` against oidc-provider writes the same report as against the local issuer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import ServerProcess, clean_env, free_port, run_script, script

from .conftest import SHOPPING_API, STATS_APP, api_env, app_secret, init_db, start_api

pytestmark = [pytest.mark.node, pytest.mark.slow]

DAY = "2026-11-20"
SEEDED_ORDERS = 400


def seed(env: dict[str, str], cwd: Path) -> None:
    """Deterministic sample data (fixed random seed) for one day."""
    result = run_script(
        "flask",
        "--app",
        "shopping_api",
        "seed",
        "--products",
        "12",
        "--orders",
        str(SEEDED_ORDERS),
        "--customers",
        "6",
        "--date",
        DAY,
        "--random-seed",
        "7",
        env=env,
        cwd=cwd,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def run_worker(endpoint: str, api_url: str, reports: Path, cwd: Path) -> Path:
    """``stats-worker once`` for DAY as the stats worker app of the tenant at ``endpoint``."""
    env = clean_env(
        LOGTO_ENDPOINT=endpoint,
        LOGTO_APP_ID=STATS_APP,
        LOGTO_APP_SECRET=app_secret(STATS_APP),
        SHOPPING_API_RESOURCE=SHOPPING_API,
        SHOPPING_API_URL=api_url,
        STATS_SCOPES="read:orders read:products",
        STATS_TIMEZONE="UTC",
        STATS_PAGE_SIZE="150",
        REPORTS_DIR=str(reports),
    )
    result = run_script("stats-worker", "once", "--date", DAY, env=env, cwd=cwd, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert app_secret(STATS_APP) not in result.stdout + result.stderr
    return reports / f"{DAY}.json"


@pytest.fixture
def local_issuer(tmp_path):
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = ServerProcess(
        [
            script("local-issuer"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--state-dir",
            str(tmp_path / "local-issuer"),
        ],
        env=clean_env(),
        cwd=tmp_path,
        log_path=tmp_path / "local-issuer.log",
        ready_url=f"{endpoint}/oidc/.well-known/openid-configuration",
    )
    with server:
        yield endpoint


def test_same_report_as_with_the_local_issuer(fresh_provider, local_issuer, tmp_path):
    database_url = f"sqlite:///{tmp_path / 'shop.sqlite'}"
    provider_env = api_env(fresh_provider, database_url)
    init_db(provider_env, tmp_path)
    seed(provider_env, tmp_path)

    # Two APIs over the same data, each trusting one issuer, configured only through settings.
    local_env = clean_env(
        LOGTO_ENDPOINT=local_issuer, SHOPPING_API_RESOURCE=SHOPPING_API, DATABASE_URL=database_url
    )
    local_api, local_url = start_api(local_env, tmp_path)
    provider_api, provider_url = start_api(provider_env, tmp_path)
    try:
        expected = run_worker(local_issuer, local_url, tmp_path / "reports-local", tmp_path)
        actual = run_worker(fresh_provider.endpoint, provider_url, tmp_path / "reports-interop", tmp_path)
    finally:
        local_api.stop()
        provider_api.stop()

    report = json.loads(expected.read_text(encoding="utf-8"))
    assert report["date"] == DAY
    assert report["orders"] == SEEDED_ORDERS
    assert actual.read_bytes() == expected.read_bytes()
    # The second run really went through oidc-provider, as Logto's quick start asks.
    grant = fresh_provider.stats()["last_grant"]
    assert grant == {
        "client_id": STATS_APP,
        "client_auth": "client_secret_basic",
        "grant_type": "client_credentials",
        "resource": SHOPPING_API,
        "scope": "read:orders read:products",
    }
