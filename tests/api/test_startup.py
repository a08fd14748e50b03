"""Starting the API: a bad setting stops gunicorn and the flask CLI with one clear line, and a
database that does not answer gives 503s, never 500s."""

from __future__ import annotations

import subprocess
import sys

import pytest

from shopping_api import create_app
from tests.api.fixtures import shared_jwks_server  # noqa: F401 (fixture)
from tests.support import clean_env, free_port, gunicorn_argv

BAD_SETTINGS = [
    ({"DATABASE_URL": "mysql://shop@db/shop"}, "DATABASE_URL"),
    ({"DATABASE_URL": "not a url"}, "DATABASE_URL"),
    ({"DATABASE_URL": "postgresql+asyncpg://db/shop"}, "DATABASE_URL"),
    ({"TOKEN_LEEWAY_SECONDS": "soon"}, "TOKEN_LEEWAY_SECONDS"),
    ({"LOGTO_ENDPOINT": "logto.example"}, "LOGTO_ENDPOINT"),
]


def one_line_naming(output: str, setting: str) -> None:
    lines = [line for line in output.splitlines() if "bad setting" in line]
    assert len(lines) == 1 and lines[0].startswith(f"shopping-api: bad setting: {setting}:"), output
    assert "Traceback" not in output, output


@pytest.mark.parametrize(("settings", "name"), [BAD_SETTINGS[1], BAD_SETTINGS[3]])
def test_gunicorn_halts_on_a_bad_setting(tmp_path, settings, name):
    # The arbiter must stop (exit code 3, "Worker failed to boot"), not respawn workers forever,
    # and say it once although every worker fails.
    result = subprocess.run(
        gunicorn_argv(free_port(), workers=3),
        env=clean_env(**settings),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3, result.stderr
    one_line_naming(result.stdout + result.stderr, name)


@pytest.mark.parametrize(("settings", "name"), [BAD_SETTINGS[0], BAD_SETTINGS[2], BAD_SETTINGS[4]])
def test_flask_cli_stops_on_a_bad_setting(tmp_path, settings, name):
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "shopping_api", "init-db"],
        env=clean_env(**settings),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3
    one_line_naming(result.stdout + result.stderr, name)


def test_create_app_raises_for_callers_that_pass_settings():
    from logto_m2m.settings import SettingsError

    with pytest.raises(SettingsError, match="DATABASE_URL"):
        create_app({"ENV_FILE": None, "DATABASE_URL": "mysql://x/y"})


@pytest.fixture
def unreachable_app(api_settings):
    port = free_port()  # nothing listens there
    return create_app({**api_settings, "DATABASE_URL": f"postgresql+psycopg://shop@127.0.0.1:{port}/shop"})


@pytest.fixture
def database_url():
    return "sqlite://"


def test_unreachable_database_is_503_not_500(unreachable_app, bearer):
    client = unreachable_app.test_client()
    health = client.get("/healthz")
    assert health.status_code == 503 and health.json["error"] == "temporarily_unavailable"
    listing = client.get("/products", headers=bearer())
    assert listing.status_code == 503 and listing.headers["Retry-After"] == "1"
    result = unreachable_app.test_cli_runner().invoke(args=["init-db"])
    assert result.exit_code == 1 and "cannot reach the database" in result.output
    assert "Traceback" not in result.output


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json == {"status": "ok"}


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("postgres://shop:p%40ss@db:5433/shop", "postgresql+psycopg://shop:p%40ss@db:5433/shop"),
        ("postgresql://shop@db/shop?sslmode=require", "postgresql+psycopg://shop@db/shop?sslmode=require"),
        ("sqlite:////srv/shop.sqlite", "sqlite:////srv/shop.sqlite"),
    ],
)
def test_database_urls_get_the_shipped_driver(given, used):
    from shopping_api.config import ApiSettings

    assert ApiSettings(_env_file=None, database_url=given).database_url == used
