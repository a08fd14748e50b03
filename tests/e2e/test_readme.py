"""The README's hands-on sections, run as written.

"Run it by hand in three terminals" and "Use with Logto Cloud / Logto OSS" run in a copy of the
repository, with the copy's ``.venv`` being the test's own environment (``make install`` is the
one line not run: it would install into it). Ports are moved the way the README's "Moving a port"
paragraph says, by lines added to ``.env``, so no run touches 3001 or 8000. For Logto, the local
issuer started from its bootstrap tenant (only the Management API and the bootstrap app, as a new
Logto tenant after its one Admin Console step) stands in for the tenant.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support import ROOT, ServerProcess, clean_env, copy_of_the_repository, free_port

pytestmark = pytest.mark.slow

SH_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.M | re.S)
YESTERDAY = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)


def section_blocks(title: str) -> list[list[str]]:
    """The lines of each ``sh`` block of a README section, in order (comments dropped)."""
    section = re.search(rf"^## {re.escape(title)}\n(.*?)^## ", (ROOT / "README.md").read_text(), re.M | re.S)
    assert section, f"README.md has no section {title!r}"
    return [
        [line for line in block.splitlines() if line.strip() and not line.startswith("#")]
        for block in SH_BLOCK.findall(section.group(1))
    ]


class Checkout:
    """A copy of the repository whose commands run the way the README says, from its root."""

    def __init__(self, root: Path) -> None:
        self.root = copy_of_the_repository(root)
        (self.root / ".venv").symlink_to(Path(sys.prefix))  # what `make install` would have made
        self.env = clean_env(PYTHONPATH=str(self.root))  # the copy's packages, not the checkout's
        self.api_port = free_port()

    def run(self, line: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["bash", "-c", line], cwd=self.root, env=self.env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, f"{line}\n{result.stdout}\n{result.stderr}"
        return result

    def add_to_dotenv(self, text: str) -> None:
        with (self.root / ".env").open("a", encoding="utf-8") as dotenv:
            dotenv.write(text)

    def server(self, line: str, ready_url: str) -> ServerProcess:
        return ServerProcess(["bash", "-c", f"exec {line}"], env=self.env, cwd=self.root, ready_url=ready_url)

    @contextmanager
    def api(self, lines: list[str]) -> Iterator[None]:
        """The API section's lines: its set-up commands, then the server until the block ends."""
        *setup, serve = lines
        for line in setup:
            self.run(line)
        server = self.server(serve, f"http://127.0.0.1:{self.api_port}/readyz").start()
        try:
            yield
        finally:
            server.stop()

    def report(self) -> dict:
        return json.loads((self.root / "reports" / f"{YESTERDAY}.json").read_text(encoding="utf-8"))


def test_the_sections_are_what_this_test_runs():
    setup, issuer, api, worker = section_blocks("Run it by hand in three terminals")
    assert setup == ["make install", "cp .env.example .env"]
    assert [len(issuer), len(api), len(worker)] == [1, 3, 1]
    dotenv, provision = section_blocks("Use with Logto Cloud / Logto OSS")
    assert [line.split("=")[0] for line in dotenv] == [
        "LOGTO_ENDPOINT",
        "LOGTO_MANAGEMENT_API_RESOURCE",
        "LOGTO_ADMIN_APP_ID",
        "LOGTO_ADMIN_APP_SECRET",
    ]
    assert provision == [".venv/bin/logto-m2m provision --env-file .env"]


def test_three_terminals_as_written(tmp_path):
    setup, (issuer_line,), api_lines, (worker_line,) = section_blocks("Run it by hand in three terminals")
    checkout = Checkout(tmp_path / "repo")
    assert setup[0] == "make install"
    for line in setup[1:]:
        checkout.run(line)
    issuer_port, api_port = free_port(), checkout.api_port
    checkout.add_to_dotenv(  # "Moving a port"
        f"LOCAL_ISSUER_PORT={issuer_port}\nLOGTO_ENDPOINT=http://127.0.0.1:{issuer_port}\n"
        f"SHOPPING_API_BIND=127.0.0.1:{api_port}\nSHOPPING_API_URL=http://127.0.0.1:{api_port}\n"
    )
    discovery = f"http://127.0.0.1:{issuer_port}/oidc/.well-known/openid-configuration"
    issuer = checkout.server(issuer_line, discovery).start()
    try:
        with checkout.api(api_lines):
            result = checkout.run(worker_line)
    finally:
        issuer.stop()
    assert checkout.report()["orders"] == 1000  # the seeded day, read back through the API with a token
    assert f"{YESTERDAY} (UTC): 1,000 orders" in result.stdout


def test_use_with_logto_as_written(tmp_path):
    """The bootstrap app's settings, one command, then the API and the worker on the new tenant."""
    dotenv, (provision,) = section_blocks("Use with Logto Cloud / Logto OSS")
    _setup, _issuer, api_lines, (worker_line,) = section_blocks("Run it by hand in three terminals")
    checkout = Checkout(tmp_path / "repo")
    tenant_port = free_port()
    tenant = ServerProcess(
        [
            str(Path(sys.executable).parent / "local-issuer"),
            "--config",
            "local_issuer/bootstrap.yaml",
            "--port",
            str(tenant_port),
            "--state-dir",
            str(tmp_path / "tenant"),
        ],
        env=checkout.env,
        cwd=checkout.root,
        ready_url=f"http://127.0.0.1:{tenant_port}/oidc/.well-known/openid-configuration",
    ).start()
    # The README's lines with this tenant's values: Logto OSS's, as their comments say.
    values = {
        "LOGTO_ENDPOINT": f"http://127.0.0.1:{tenant_port}",
        "LOGTO_MANAGEMENT_API_RESOURCE": "https://default.logto.app/api",
        "LOGTO_ADMIN_APP_ID": "m2m-bootstrap-admin",
        "LOGTO_ADMIN_APP_SECRET": "bootstrap-admin-local-secret",
    }
    for line in dotenv:
        name = line.split("=")[0]
        checkout.add_to_dotenv(f"{name}={values[name]}\n")
    checkout.add_to_dotenv(
        f"SHOPPING_API_BIND=127.0.0.1:{checkout.api_port}\n"
        f"SHOPPING_API_URL=http://127.0.0.1:{checkout.api_port}\n"
    )
    try:
        first = checkout.run(provision).stdout.splitlines()
        assert re.fullmatch(r"created [1-9]\d*, updated 0, unchanged \d+, conflicts 0", first[-1]), first
        again = checkout.run(provision).stdout.splitlines()
        assert re.fullmatch(r"created 0, updated 0, unchanged \d+, conflicts 0", again[-1]), again
        assert "LOGTO_APP_SECRET=" in (checkout.root / ".env").read_text()
        assert (checkout.root / ".env").stat().st_mode & 0o777 == 0o600
        with checkout.api(api_lines):  # "Start the API and the worker as in three terminals"
            result = checkout.run(worker_line)
    finally:
        tenant.stop()
    assert checkout.report()["orders"] == 1000
    assert f"{YESTERDAY} (UTC): 1,000 orders" in result.stdout
