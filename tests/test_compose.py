"""docker-compose.yml and the Dockerfile agree with the code, its settings and .env.example.

No Docker engine is needed: the compose file is parsed and its ``${...}`` values resolved the way
compose does (from .env, else the default after ``:-``). Where the compose plugin exists,
``docker compose config`` checks the file as well.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from local_issuer.cli import IssuerSettings
from logto_m2m.settings import ProjectSettings, load_settings
from shopping_api.config import ApiSettings, ServingSettings
from stats_worker.config import WorkerSettings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
SERVICES = COMPOSE["services"]
ENV_EXAMPLE = (ROOT / ".env.example").read_text(encoding="utf-8")
DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")
NGINX_CONF = (ROOT / "deploy" / "nginx.conf").read_text(encoding="utf-8")

#: The compose services that run this project's code, and the settings class each one reads.
PYTHON_SERVICES: dict[str, type[ProjectSettings]] = {
    "shopping-api": ApiSettings,
    "stats-worker": WorkerSettings,
}
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
    "SHOPPING_API_BIND",
    "FORWARDED_ALLOW_IPS",
}
#: The services that run the project's image.
IMAGE_SERVICES = ("local-issuer", "shopping-api", "stats-worker", "provision")

VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}")


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ``${NAME}``, ``${NAME:-default}`` and ``${NAME-default}``."""

    def replace(match: re.Match[str]) -> str:
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


def field_names(settings_class: type[ProjectSettings]) -> set[str]:
    return {name.upper() for name in settings_class.model_fields}


def published_container_ports(service: str) -> set[int]:
    return {int(str(entry).rsplit(":", 1)[-1]) for entry in SERVICES[service].get("ports", [])}


def command_text(service: str) -> str:
    return " ".join(SERVICES[service]["command"])


def conf_value(pattern: str) -> str:
    """The first group of ``pattern`` in deploy/nginx.conf (a line of it, anchored with ^)."""
    match = re.search(pattern, NGINX_CONF, re.MULTILINE)
    assert match, f"deploy/nginx.conf has no line matching {pattern!r}"
    return match.group(1)


# -- services, profiles, dependencies -----------------------------------------------------


def test_the_services_and_profiles() -> None:
    assert set(SERVICES) == {
        "postgres",
        "local-issuer",
        "shopping-api",
        "nginx",
        "stats-worker",
        "logto-postgres",
        "logto",
        "provision",
    }
    assert SERVICES["local-issuer"]["profiles"] == ["local"]
    for name in ("logto", "logto-postgres", "provision"):
        assert SERVICES[name]["profiles"] == ["logto"]
    for name in ("postgres", "shopping-api", "nginx", "stats-worker"):
        assert "profiles" not in SERVICES[name], f"{name} must run with either issuer"
    # Both issuers serve on the host's issuer port: a profile picks exactly one of them.
    assert "127.0.0.1:3001:3001" in ports("local-issuer")
    assert "127.0.0.1:3001:3001" in ports("logto")


def ports(service: str, env: dict[str, str] | None = None) -> list[str]:
    return [interpolate(str(entry), env or {}) for entry in SERVICES[service].get("ports", [])]


def test_host_ports_are_settings_bound_to_localhost() -> None:
    defaults = {service: ports(service) for service in SERVICES if "ports" in SERVICES[service]}
    assert defaults == {
        "local-issuer": ["127.0.0.1:3001:3001"],
        "nginx": ["127.0.0.1:8000:8080"],
        "logto": ["127.0.0.1:3001:3001", "127.0.0.1:3002:3002"],
    }
    env = {"DOCKER_API_PORT": "9000", "DOCKER_ISSUER_PORT": "9001", "DOCKER_LOGTO_ADMIN_PORT": "9002"}
    assert ports("nginx", env) == ["127.0.0.1:9000:8080"]
    assert ports("local-issuer", env) == ["127.0.0.1:9001:3001"]
    assert ports("logto", env) == ["127.0.0.1:9001:3001", "127.0.0.1:9002:3002"]


def test_nginx_is_the_apis_only_published_port() -> None:
    assert "ports" not in SERVICES["shopping-api"]
    assert re.fullmatch(r"nginx:\d+\.\d+\.\d+(-alpine)?", SERVICES["nginx"]["image"]), "a pinned tag"
    assert "./deploy/nginx.conf:/etc/nginx/nginx.conf:ro" in SERVICES["nginx"]["volumes"]
    # nginx shares only the proxy network with the API, so it reaches the API from the subnet
    # gunicorn trusts X-Forwarded-* from, and from nowhere else.
    assert SERVICES["nginx"]["networks"] == ["proxy"]
    assert set(SERVICES["shopping-api"]["networks"]) == {"default", "proxy"}
    subnet = interpolate(COMPOSE["networks"]["proxy"]["ipam"]["config"][0]["subnet"], {})
    assert environment("shopping-api")["FORWARDED_ALLOW_IPS"] == subnet
    assert environment("shopping-api", {"DOCKER_PROXY_SUBNET": "10.1.2.0/28"})["FORWARDED_ALLOW_IPS"] == (
        "10.1.2.0/28"
    )
    load_settings(ServingSettings, env_file=None, forwarded_allow_ips=subnet)


@pytest.mark.parametrize(
    "service",
    ["postgres", "local-issuer", "shopping-api", "nginx", "stats-worker", "logto-postgres", "logto"],
)
def test_servers_have_healthchecks(service: str) -> None:
    check = SERVICES[service]["healthcheck"]
    assert check["test"][0] in ("CMD", "CMD-SHELL")
    assert check["retries"] >= 1


@pytest.mark.parametrize("service", ["postgres", "logto-postgres"])
def test_databases_are_healthy_only_when_tcp_answers(service: str) -> None:
    """pg_isready over the Unix socket answers while the image's first-run server refuses TCP."""
    test = SERVICES[service]["healthcheck"]["test"]
    assert test[0] == "CMD" and test[1] == "pg_isready"
    assert test[test.index("-h") + 1] == "127.0.0.1"


def test_health_means_ready() -> None:
    api = " ".join(SERVICES["shopping-api"]["healthcheck"]["test"])
    assert "http://127.0.0.1:8000/readyz" in api  # database, tables and signing keys, not just alive
    assert SERVICES["stats-worker"]["healthcheck"]["test"] == ["CMD", "stats-worker", "status"]
    assert "http://127.0.0.1:8080/healthz" in SERVICES["nginx"]["healthcheck"]["test"]


def test_dependencies_wait_for_health() -> None:
    expected = {
        "shopping-api": {"postgres"},
        "nginx": {"shopping-api"},
        "stats-worker": {"shopping-api"},
        "logto": {"logto-postgres"},
        "provision": {"logto"},
    }
    for service, needs in expected.items():
        depends = dict(SERVICES[service]["depends_on"])
        if service == "stats-worker":
            # A one-shot container that has exited fails `docker compose up --wait`, unless what
            # waits for it says so; `required: false`: outside the logto profile it is not there.
            assert depends.pop("provision") == {
                "condition": "service_completed_successfully",
                "required": False,
            }
        assert set(depends) == needs
        for target, condition in depends.items():
            assert condition == {"condition": "service_healthy"}
            assert "healthcheck" in SERVICES[target]
    # Against Logto Cloud there is no issuer service, so nothing outside the logto profile may
    # depend on one.
    for name, service in SERVICES.items():
        if "logto" not in service.get("profiles", []):
            assert not {"local-issuer", "logto"} & set(service.get("depends_on", {})), name


def test_one_image_built_once() -> None:
    """compose builds an image per service that says `build:`: exactly one does."""
    builders = [name for name, service in SERVICES.items() if "build" in service]
    assert builders == ["shopping-api"]
    images = {SERVICES[name]["image"] for name in IMAGE_SERVICES}
    assert images == {"logto-m2m-reference:latest"}


# -- settings -------------------------------------------------------------------------------


@pytest.mark.parametrize("service", sorted(PYTHON_SERVICES))
def test_every_setting_of_the_program_is_passed_through(service: str) -> None:
    """Each setting the program reads can be set from .env, so nothing needs a compose edit."""
    assert field_names(PYTHON_SERVICES[service]) <= set(environment(service))


def test_serving_settings_are_passed_through() -> None:
    env = environment("shopping-api")
    assert field_names(ServingSettings) <= set(env)
    settings = load_settings(
        ServingSettings,
        env_file=None,
        **{name.lower(): value for name, value in env.items() if name in field_names(ServingSettings)},
    )
    assert settings.shopping_api_bind == "0.0.0.0:8000"
    assert environment("shopping-api", {"LOG_FORMAT": "json"})["LOG_FORMAT"] == "json"


@pytest.mark.parametrize("service", sorted(PYTHON_SERVICES))
def test_compose_defaults_are_valid_settings(service: str) -> None:
    """With no .env at all, the program starts: every setting is set or defaulted, and valid."""
    env = environment(service)
    settings_class = PYTHON_SERVICES[service]
    values = {
        name.lower(): value for name, value in env.items() if name.upper() in field_names(settings_class)
    }
    load_settings(settings_class, env_file=None, **values)


@pytest.mark.parametrize("service", sorted(PYTHON_SERVICES))
def test_compose_defaults_match_the_code(service: str) -> None:
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


def test_env_file_values_reach_the_programs() -> None:
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


def test_every_compose_variable_is_documented_in_env_example() -> None:
    missing = sorted(name for name in compose_variables() | {"COMPOSE_PROFILES"} if not documented(name))
    assert not missing, f"add these to .env.example: {missing}"


@pytest.mark.parametrize(
    "settings_class", [ApiSettings, WorkerSettings, IssuerSettings], ids=lambda c: c.__name__
)
def test_every_setting_is_documented_in_env_example(settings_class: type[ProjectSettings]) -> None:
    missing = sorted(name for name in field_names(settings_class) if not documented(name))
    assert not missing, f"add these to .env.example: {missing}"


# -- the network: names, ports, issuer URLs ---------------------------------------------------


def test_api_port_agrees_everywhere() -> None:
    bind_port = int(environment("shopping-api")["SHOPPING_API_BIND"].rsplit(":", 1)[1])
    assert f"http://127.0.0.1:{bind_port}/readyz" in " ".join(SERVICES["shopping-api"]["healthcheck"]["test"])
    assert environment("stats-worker")["SHOPPING_API_URL"] == f"http://shopping-api:{bind_port}"
    # nginx: proxies to that port, listens on the port compose publishes and checks.
    assert re.search(rf"set \$shopping_api shopping-api:{bind_port};", NGINX_CONF)
    listen = int(conf_value(r"^\s*listen (\d+);"))
    assert published_container_ports("nginx") == {listen}
    assert f"http://127.0.0.1:{listen}/healthz" in SERVICES["nginx"]["healthcheck"]["test"]


def test_gunicorn_runs_with_the_repositorys_config() -> None:
    command = command_text("shopping-api")
    assert "exec gunicorn -c /app/gunicorn.conf.py 'shopping_api:create_app()'" in command
    assert "--bind" not in command, "the bind is SHOPPING_API_BIND, read by gunicorn.conf.py"
    assert "COPY gunicorn.conf.py /app/gunicorn.conf.py" in DOCKERFILE
    assert 'CMD ["gunicorn", "-c", "/app/gunicorn.conf.py", "shopping_api:create_app()"]' in DOCKERFILE


def test_nginx_body_limit_is_the_apis() -> None:
    from shopping_api.validation import MAX_CONTENT_LENGTH

    size = conf_value(r"^\s*client_max_body_size (\d+)k;")
    assert int(size) * 1024 == MAX_CONTENT_LENGTH


def test_provision_runs_against_logto_and_writes_the_projects_env() -> None:
    provision = SERVICES["provision"]
    env = environment("provision")
    assert env["LOGTO_ENDPOINT"] == "http://logto:3001"
    assert env["LOGTO_MANAGEMENT_API_RESOURCE"] == "https://default.logto.app/api"
    assert environment("provision", {"LOGTO_ADMIN_APP_ID": "abc"})["LOGTO_ADMIN_APP_ID"] == "abc"
    assert ".:/project" in provision["volumes"]
    assert "logto-m2m provision --env-file /project/.env" in command_text("provision")
    assert provision["restart"] == "no"
    assert interpolate(provision["user"], {}) == "1000:1000"


def test_issuer_urls_point_at_services_and_the_public_issuer() -> None:
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


def test_database_url_names_the_postgres_service() -> None:
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


def test_local_issuer_settings() -> None:
    env = environment("local-issuer")
    settings = load_settings(
        IssuerSettings, env_file=None, **{name.lower(): value for name, value in env.items()}
    )
    assert settings.logto_endpoint == "http://localhost:3001"
    assert f"local-issuer-data:{settings.local_issuer_state_dir}" in SERVICES["local-issuer"]["volumes"]
    command = SERVICES["local-issuer"]["command"]
    assert command[:3] == ["local-issuer", "--host", "0.0.0.0"]  # noqa: S104 -- reachable from other containers


def test_local_issuer_command_starts_on_every_address(tmp_path: Path) -> None:
    """Compose's command as is (the port aside): the issuer accepts it, with the demo tenant on
    a non-loopback address, rather than refusing to start."""
    from tests.support import ServerProcess, clean_env, free_port, script

    command = SERVICES["local-issuer"]["command"]
    assert "--allow-demo-config-on-network" in command
    port = free_port()
    argv = [script(command[0]), *command[1:]]
    argv[argv.index("--port") + 1] = str(port)
    with ServerProcess(
        [*argv, "--state-dir", str(tmp_path / "state")],
        env=clean_env(),
        cwd=tmp_path,
        ready_url=f"http://127.0.0.1:{port}/oidc/.well-known/openid-configuration",
    ) as issuer:
        assert issuer.proc is not None and issuer.proc.poll() is None


def test_state_is_kept_in_volumes() -> None:
    reports = environment("stats-worker")["REPORTS_DIR"]
    assert f"reports:{reports}" in SERVICES["stats-worker"]["volumes"]
    assert set(COMPOSE["volumes"]) >= {"reports", "shop-db", "local-issuer-data", "logto-db"}


# -- processes and the image ----------------------------------------------------------------------


@pytest.mark.parametrize("service", ["local-issuer", "shopping-api", "stats-worker", "provision"])
def test_programs_receive_signals(service: str) -> None:
    command = SERVICES[service]["command"]
    assert isinstance(command, list), "exec form: no shell between docker and the program"
    if command[:2] == ["sh", "-c"]:
        # The shell must hand over to the program, or SIGTERM stops at the shell.
        assert re.search(r"(&&|;) *exec ", command[2])
    assert SERVICES[service]["init"] is True


def dockerfile_lines() -> list[str]:
    joined = DOCKERFILE.replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.startswith("#")]


def test_dockerfile_is_slim_non_root_and_caches_dependencies() -> None:
    lines = dockerfile_lines()
    assert re.fullmatch(r"FROM python:3\.1[1-9]-slim", lines[0])
    copies = [line for line in lines if line.startswith("COPY")]
    assert copies[0] == "COPY requirements.lock ./", (
        "dependencies must be installed before the code is copied"
    )
    first_code_copy = next(
        i for i, line in enumerate(lines) if line.startswith("COPY") and "lock" not in line
    )
    install = next(i for i, line in enumerate(lines) if "pip install" in line)
    assert install < first_code_copy
    users = [line for line in lines if line.startswith("USER")]
    assert users and users[-1] not in ("USER root", "USER 0")
    cmd = next(line for line in lines if line.startswith("CMD"))
    assert cmd.startswith('CMD ["'), "exec form"
    for package in ("logto_m2m", "shopping_api", "stats_worker", "local_issuer"):
        assert f"COPY {package} ./{package}" in lines


def test_dockerfile_installs_exactly_the_lock_file() -> None:
    """Hashes required, nothing resolved again: the image runs the versions the tests passed on."""
    installs = [line for line in dockerfile_lines() if "pip install" in line]
    assert installs[0].endswith("pip install --require-hashes --no-deps -r requirements.lock")
    assert all("--no-deps" in line for line in installs)


def test_lock_file_pins_every_dependency_pyproject_declares() -> None:
    """A dependency added to pyproject.toml without `make lock` would be missing from the image."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    lock = (ROOT / "requirements.lock").read_text(encoding="utf-8")
    pinned = {
        canonicalize_name(match.group(1)): match.group(2)
        for match in re.finditer(r"^([A-Za-z0-9._-]+)==(\S+)", lock, re.MULTILINE)
    }
    assert all(re.search(rf"^{re.escape(name)}==", lock, re.MULTILINE | re.IGNORECASE) for name in ["flask"])
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    for spec in project["dependencies"] + project["optional-dependencies"]["postgres"]:
        requirement = Requirement(spec)
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{name} is not in requirements.lock: run `make lock`"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (
            f"requirements.lock pins {name}=={pinned[name]}, outside {requirement.specifier}: run `make lock`"
        )
    # Every pin carries a hash (pip --require-hashes refuses the file otherwise).
    for block in re.split(r"\n(?=[A-Za-z0-9])", lock.strip()):
        if "==" in block.split("\n", 1)[0]:
            assert "--hash=sha256:" in block, block.split("\n", 1)[0]


def test_dockerignore_keeps_secrets_and_state_out() -> None:
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    for entry in (".env", ".venv", ".git", ".demo", "reports", "tests"):
        assert entry in ignored
    for needed in ("requirements.lock", "gunicorn.conf.py", "deploy"):
        assert needed not in ignored


def test_docker_compose_config() -> None:
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
                "--env-file",
                str(ROOT / ".env.example"),
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
