"""docker-compose.yml and the Dockerfile agree with the code, its settings and .env.example.

No Docker engine is needed: the compose file is parsed and its ``${...}`` values resolved the way
compose does (from .env, else the default after ``:-``). Where the compose plugin exists,
``docker compose config`` checks the file as well.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from local_issuer.cli import IssuerSettings
from logto_m2m.settings import load_settings
from shopping_api.config import ApiSettings
from stats_worker.config import WorkerSettings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
SERVICES = COMPOSE["services"]
ENV_EXAMPLE = (ROOT / ".env.example").read_text(encoding="utf-8")
DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")

#: The compose services that run this project's code, and the settings class each one reads.
PYTHON_SERVICES = {"shopping-api": ApiSettings, "stats-worker": WorkerSettings}
#: Settings whose compose value differs from the program's default on purpose: inside the
#: network, other services are reached by their service names, and data lives under /data.
NETWORK_SETTINGS = {
    "LOGTO_ENDPOINT",
    "LOGTO_ISSUER",
    "LOGTO_JWKS_URI",
    "DATABASE_URL",
    "SHOPPING_API_URL",
    "REPORTS_DIR",
    "LOGTO_APP_ID",
    "LOGTO_APP_SECRET",
}

VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}")


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ``${NAME}``, ``${NAME:-default}`` and ``${NAME-default}``."""

    def replace(match: re.Match) -> str:
        name, operator, default = match.group(1), match.group(2), match.group(3) or ""
        if operator == ":-":
            return env.get(name) or default
        if operator == "-":
            return env.get(name, default)
        return env.get(name, "")

    return VARIABLE.sub(replace, value)


def environment(service: str, env: dict[str, str] | None = None) -> dict[str, str]:
    raw = SERVICES[service].get("environment", {})
    assert isinstance(raw, dict), f"{service}: write environment as a mapping"
    return {name: interpolate(str(value), env or {}) for name, value in raw.items()}


def compose_variables() -> set[str]:
    text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    return {match.group(1) for match in VARIABLE.finditer(text)}


def documented(name: str) -> bool:
    """``NAME=...`` in .env.example, active or commented out."""
    return re.search(rf"^#?\s*{name}=", ENV_EXAMPLE, re.MULTILINE) is not None


def field_names(settings_class) -> set[str]:
    return {name.upper() for name in settings_class.model_fields}


def published_container_ports(service: str) -> set[int]:
    return {int(str(entry).rsplit(":", 1)[-1]) for entry in SERVICES[service].get("ports", [])}


def command_text(service: str) -> str:
    command = SERVICES[service]["command"]
    return " ".join(command)


# -- services, profiles, dependencies -----------------------------------------------------


def test_the_services_and_profiles():
    assert set(SERVICES) == {
        "postgres",
        "local-issuer",
        "shopping-api",
        "stats-worker",
        "logto-postgres",
        "logto",
    }
    assert SERVICES["local-issuer"]["profiles"] == ["local"]
    assert SERVICES["logto"]["profiles"] == ["logto"]
    assert SERVICES["logto-postgres"]["profiles"] == ["logto"]
    for name in ("postgres", "shopping-api", "stats-worker"):
        assert "profiles" not in SERVICES[name], f"{name} must run with either issuer"
    # Both issuers serve on the host's port 3001: a profile picks exactly one of them.
    assert "127.0.0.1:3001:3001" in SERVICES["local-issuer"]["ports"]
    assert "127.0.0.1:3001:3001" in SERVICES["logto"]["ports"]


@pytest.mark.parametrize("service", ["postgres", "local-issuer", "shopping-api", "logto-postgres", "logto"])
def test_servers_have_healthchecks(service):
    check = SERVICES[service]["healthcheck"]
    assert check["test"][0] in ("CMD", "CMD-SHELL")
    assert check["retries"] >= 3


def test_dependencies_wait_for_health():
    expected = {"shopping-api": {"postgres"}, "stats-worker": {"shopping-api"}, "logto": {"logto-postgres"}}
    for service, needs in expected.items():
        depends = SERVICES[service]["depends_on"]
        assert set(depends) == needs
        for target, condition in depends.items():
            assert condition == {"condition": "service_healthy"}
            assert "healthcheck" in SERVICES[target]
    # Against Logto Cloud there is no issuer service, so nothing may depend on one.
    for service in SERVICES.values():
        assert not {"local-issuer", "logto"} & set(service.get("depends_on", {})) - {"logto-postgres"}


# -- settings -------------------------------------------------------------------------------


@pytest.mark.parametrize("service", sorted(PYTHON_SERVICES))
def test_every_setting_of_the_program_is_passed_through(service):
    """Each setting the program reads can be set from .env, so nothing needs a compose edit."""
    assert field_names(PYTHON_SERVICES[service]) <= set(environment(service))


@pytest.mark.parametrize("service", sorted(PYTHON_SERVICES))
def test_compose_defaults_are_valid_settings(service):
    """With no .env at all, the program starts: every setting is set or defaulted, and valid."""
    env = environment(service)
    settings_class = PYTHON_SERVICES[service]
    values = {
        name.lower(): value for name, value in env.items() if name.upper() in field_names(settings_class)
    }
    load_settings(settings_class, env_file=None, **values)


@pytest.mark.parametrize("service", sorted(PYTHON_SERVICES))
def test_compose_defaults_match_the_code(service):
    """A default written in compose equals the program's own, so the two cannot drift apart."""
    settings_class = PYTHON_SERVICES[service]
    required = {"logto_app_id": "x", "logto_app_secret": "x"} if service == "stats-worker" else {}
    code = load_settings(settings_class, env_file=None, **required)
    values = {
        name.lower(): value
        for name, value in environment(service).items()
        if name in field_names(settings_class) and name not in NETWORK_SETTINGS
    }
    composed = load_settings(settings_class, env_file=None, **{**required, **values})
    for name in values:
        assert getattr(composed, name) == getattr(code, name), name


def test_env_file_values_reach_the_programs():
    env = {
        "STATS_CRON": "30 1 * * *",
        "TOKEN_LEEWAY_SECONDS": "10",
        "DOCKER_LOGTO_ENDPOINT": "https://tenant.logto.app",
        "DOCKER_LOGTO_PUBLIC_ENDPOINT": "https://tenant.logto.app",
    }
    assert environment("stats-worker", env)["STATS_CRON"] == "30 1 * * *"
    api = environment("shopping-api", env)
    assert api["TOKEN_LEEWAY_SECONDS"] == "10"
    assert api["LOGTO_ISSUER"] == "https://tenant.logto.app/oidc"
    assert api["LOGTO_JWKS_URI"] == "https://tenant.logto.app/oidc/jwks"


def test_every_compose_variable_is_documented_in_env_example():
    missing = sorted(name for name in compose_variables() | {"COMPOSE_PROFILES"} if not documented(name))
    assert not missing, f"add these to .env.example: {missing}"


@pytest.mark.parametrize(
    "settings_class", [ApiSettings, WorkerSettings, IssuerSettings], ids=lambda c: c.__name__
)
def test_every_setting_is_documented_in_env_example(settings_class):
    missing = sorted(name for name in field_names(settings_class) if not documented(name))
    assert not missing, f"add these to .env.example: {missing}"


# -- the network: names, ports, issuer URLs ---------------------------------------------------


def test_api_port_agrees_everywhere():
    assert "--bind 0.0.0.0:8000" in command_text("shopping-api")
    assert published_container_ports("shopping-api") == {8000}
    assert "http://127.0.0.1:8000/healthz" in " ".join(SERVICES["shopping-api"]["healthcheck"]["test"])
    assert environment("stats-worker")["SHOPPING_API_URL"] == "http://shopping-api:8000"


def test_issuer_urls_point_at_services_and_the_public_issuer():
    issuer_port = int(
        SERVICES["local-issuer"]["command"][SERVICES["local-issuer"]["command"].index("--port") + 1]
    )
    assert published_container_ports("local-issuer") == {issuer_port}
    api, worker = environment("shopping-api"), environment("stats-worker")
    internal = urlsplit(api["LOGTO_JWKS_URI"])
    assert (internal.hostname, internal.port) == ("local-issuer", issuer_port)
    assert internal.path == "/oidc/jwks"
    assert worker["LOGTO_ENDPOINT"] == api["LOGTO_ENDPOINT"] == f"http://local-issuer:{issuer_port}"
    # Tokens carry the issuer's public URL; the API must expect exactly that.
    public = environment("local-issuer")["LOGTO_ENDPOINT"]
    assert api["LOGTO_ISSUER"] == public + "/oidc"
    assert environment("logto")["ENDPOINT"] == public
    # Logto profile: the same two variables, pointed at the logto service.
    logto = {"DOCKER_LOGTO_ENDPOINT": "http://logto:3001"}
    assert environment("shopping-api", logto)["LOGTO_JWKS_URI"] == "http://logto:3001/oidc/jwks"
    assert 3001 in published_container_ports("logto")


def test_database_url_names_the_postgres_service():
    url = urlsplit(environment("shopping-api")["DATABASE_URL"])
    postgres = environment("postgres")
    assert url.scheme == "postgresql+psycopg" and url.hostname == "postgres"
    assert (url.username, url.password, url.path) == (
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
        "/" + postgres["POSTGRES_DB"],
    )
    logto_db = urlsplit(environment("logto")["DB_URL"])
    assert logto_db.hostname == "logto-postgres"
    assert logto_db.password == environment("logto-postgres")["POSTGRES_PASSWORD"]


def test_local_issuer_settings():
    env = environment("local-issuer")
    settings = load_settings(
        IssuerSettings, env_file=None, **{name.lower(): value for name, value in env.items()}
    )
    assert settings.logto_endpoint == "http://localhost:3001"
    assert f"local-issuer-data:{settings.local_issuer_state_dir}" in SERVICES["local-issuer"]["volumes"]
    command = SERVICES["local-issuer"]["command"]
    assert command[:3] == ["local-issuer", "--host", "0.0.0.0"]  # noqa: S104 -- reachable from other containers


def test_state_is_kept_in_volumes():
    reports = environment("stats-worker")["REPORTS_DIR"]
    assert f"reports:{reports}" in SERVICES["stats-worker"]["volumes"]
    assert set(COMPOSE["volumes"]) >= {"reports", "shop-db", "local-issuer-data", "logto-db"}


# -- processes and the image ----------------------------------------------------------------------


@pytest.mark.parametrize("service", ["local-issuer", "shopping-api", "stats-worker"])
def test_programs_receive_signals(service):
    command = SERVICES[service]["command"]
    assert isinstance(command, list), "exec form: no shell between docker and the program"
    if command[:2] == ["sh", "-c"]:
        # The shell must hand over to the server, or SIGTERM stops at the shell.
        assert " && exec " in command[2]
    assert SERVICES[service]["init"] is True


def test_dockerfile_is_slim_non_root_and_caches_dependencies():
    lines = [line.strip() for line in DOCKERFILE.splitlines() if line.strip() and not line.startswith("#")]
    assert re.fullmatch(r"FROM python:3\.1[1-9]-slim", lines[0])
    copies = [line for line in lines if line.startswith("COPY")]
    assert copies[0] == "COPY pyproject.toml ./", "dependencies must be installed before the code is copied"
    first_code_copy = next(
        i for i, line in enumerate(lines) if line.startswith("COPY") and "pyproject" not in line
    )
    install = next(i for i, line in enumerate(lines) if "pip install -r" in line)
    assert install < first_code_copy
    users = [line for line in lines if line.startswith("USER")]
    assert users and users[-1] not in ("USER root", "USER 0")
    cmd = next(line for line in lines if line.startswith("CMD"))
    assert cmd.startswith('CMD ["'), "exec form"
    for package in ("logto_m2m", "shopping_api", "stats_worker", "local_issuer"):
        assert f"COPY {package} ./{package}" in lines


def test_dockerfile_installs_the_dependencies_pyproject_declares():
    """The image's dependency layer reads pyproject.toml: run that very step here."""
    joined = DOCKERFILE.replace("\\\n", "")
    step = next(line for line in joined.splitlines() if "tomllib" in line)
    code = re.search(r'python -c "(.*)" > requirements\.txt', step).group(1)
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["postgres"]
    assert result.stdout.split("\n")[:-1] == wanted
    assert any(dep.startswith("psycopg") for dep in wanted)  # compose runs the API on PostgreSQL


def test_dockerignore_keeps_secrets_and_state_out():
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    for entry in (".env", ".venv", ".git", ".demo", "reports", "tests"):
        assert entry in ignored


def test_docker_compose_config():
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("the docker compose plugin is not installed: the YAML checks above stand in for it")
    for profile in ("local", "logto"):
        result = subprocess.run(
            [
                docker,
                "compose",
                "-f",
                str(ROOT / "docker-compose.yml"),
                "--profile",
                profile,
                "config",
                "--quiet",
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
