"""Interop fixtures: node-oidc-provider, the engine inside Logto, as a real authorization server.

``provider.mjs`` configures it the way Logto does (see its header comment); ``tenant.json`` says
which API resources and M2M apps exist. Without Node.js, npm or ``node_modules`` the tests are
skipped with a hint, except under CI (``CI`` set), where they fail so interop cannot go untested.
Every test here that needs Node is marked ``node``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from pathlib import Path

import pytest
import requests

from tests.support import ServerProcess, clean_env, free_port, gunicorn_argv, run_script

INTEROP_DIR = Path(__file__).resolve().parent
TENANT = json.loads((INTEROP_DIR / "tenant.json").read_text(encoding="utf-8"))
SHOPPING_API = "https://shopping.api"
OTHER_API = "https://other.api"
STATS_APP = "m2m-stats-worker"
ADMIN_APP = "m2m-admin"
ENABLE_HINT = (
    "to enable, install Node.js 20.19+ with npm, then run `make test` "
    "(it runs npm ci in tests/interop) or `npm ci` in tests/interop"
)


def node_missing() -> str | None:
    """Why the interop provider cannot run here, or None when it can."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            return f"{tool} is not on PATH"
    if not (INTEROP_DIR / "node_modules" / "oidc-provider" / "package.json").is_file():
        return "tests/interop/node_modules has no oidc-provider"
    return None


def require_node() -> None:
    """Skip with a hint when the provider cannot run; under CI, fail instead."""
    missing = node_missing()
    if missing is None:
        return
    message = f"interop with oidc-provider: {missing}; {ENABLE_HINT}"
    if os.environ.get("CI"):
        pytest.fail(f"{message}. CI is set, so the interop tests must run, not skip", pytrace=False)
    pytest.skip(message)


@pytest.fixture(autouse=True)
def _require_node(request):
    if request.node.get_closest_marker("node"):
        require_node()


def app_secret(app_id: str) -> str:
    return TENANT["applications"][app_id]["secret"]


class InteropProvider:
    """``node provider.mjs`` on a free 127.0.0.1 port, plus its test-only admin routes."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self._admin = {"Authorization": f"Bearer {secrets.token_urlsafe(24)}"}
        env = clean_env(
            INTEROP_PORT=str(self.port),
            INTEROP_ADMIN_TOKEN=self._admin["Authorization"].removeprefix("Bearer "),
        )
        self.process = ServerProcess(
            ["node", str(INTEROP_DIR / "provider.mjs")],
            env=env,
            cwd=workdir,
            ready_url=f"{self.issuer}/.well-known/openid-configuration",
            log_path=workdir / f"oidc-provider-{self.port}.log",
        )

    @property
    def endpoint(self) -> str:
        """What LOGTO_ENDPOINT would be for this server."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        return f"{self.endpoint}/oidc"

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer}/token"

    @property
    def jwks_uri(self) -> str:
        return f"{self.issuer}/jwks"

    def request_token(
        self, resource: str | None, scope: str | None = None, app_id: str = STATS_APP
    ) -> requests.Response:
        """A client_credentials request as Logto's quick start shows it (Basic auth, form body)."""
        data = {"grant_type": "client_credentials"}
        if resource is not None:
            data["resource"] = resource
        if scope is not None:
            data["scope"] = scope
        return requests.post(self.token_endpoint, data=data, auth=(app_id, app_secret(app_id)), timeout=10)

    def token(self, resource: str, scope: str, app_id: str = STATS_APP) -> str:
        response = self.request_token(resource, scope, app_id)
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    def switch_key(self, *, publish: bool = True, retire: bool = False) -> str:
        """Sign from now on with a brand-new key; return its kid.

        ``publish``: add it to the JWKS (else the JWKS stays as it was); ``retire``: and drop
        the older keys from the JWKS, as at the end of a rotation's grace period.
        """
        params = {"publish": str(publish).lower(), "retire": str(retire).lower()}
        response = requests.post(
            f"{self.endpoint}/__test__/keys", params=params, headers=self._admin, timeout=10
        )
        response.raise_for_status()
        return response.json()["kid"]

    def stats(self) -> dict:
        """``jwks_requests``, ``token_requests`` and ``last_grant`` (what the last token request sent)."""
        response = requests.get(f"{self.endpoint}/__test__/stats", headers=self._admin, timeout=10)
        response.raise_for_status()
        return response.json()

    def start(self) -> InteropProvider:
        self.process.start()
        return self

    def stop(self) -> None:
        self.process.stop()


@pytest.fixture(scope="module")
def oidc_provider(tmp_path_factory):
    """One provider for a test module; its signing key never changes."""
    require_node()  # module fixtures run before the autouse check
    provider = InteropProvider(tmp_path_factory.mktemp("oidc-provider")).start()
    yield provider
    provider.stop()


@pytest.fixture
def fresh_provider(tmp_path):
    """A provider of the test's own, for tests that switch its key."""
    require_node()
    provider = InteropProvider(tmp_path).start()
    yield provider
    provider.stop()


def api_env(provider: InteropProvider, database_url: str, **extra: str) -> dict[str, str]:
    """The shopping API's environment: it learns about the provider only through settings."""
    return clean_env(
        LOGTO_ISSUER=provider.issuer,
        LOGTO_JWKS_URI=provider.jwks_uri,
        SHOPPING_API_RESOURCE=SHOPPING_API,
        DATABASE_URL=database_url,
        **extra,
    )


def init_db(env: dict[str, str], cwd: Path) -> None:
    result = run_script("flask", "--app", "shopping_api", "init-db", env=env, cwd=cwd, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def start_api(env: dict[str, str], cwd: Path, *, workers: int = 2) -> tuple[ServerProcess, str]:
    """The shopping API under real gunicorn; returns the process and its base URL."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    server = ServerProcess(
        gunicorn_argv(port, workers=workers),
        env=env,
        cwd=cwd,
        ready_url=f"{base_url}/healthz",
        log_path=cwd / f"gunicorn-{port}.log",
    ).start()
    return server, base_url
