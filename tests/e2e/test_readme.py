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
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support import Checkout, ServerProcess, doc_commands

pytestmark = pytest.mark.slow

YESTERDAY = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)


def section_blocks(title: str) -> list[list[str]]:
    """The commands of each ``sh`` block of a README section, in order (comments dropped)."""
    blocks: dict[int, list[str]] = {}
    for command in doc_commands("README.md"):
        if command.fence.section == title:
            blocks.setdefault(command.fence.line, []).append(command.text)
    assert blocks, f"README.md has no section {title!r} with commands"
    return list(blocks.values())


@contextmanager
def api(checkout: Checkout, lines: list[str]) -> Iterator[None]:
    """The API section's lines: its set-up commands, then the server until the block ends."""
    *setup, serve = lines
    for line in setup:
        checkout.run(line)
    server = checkout.server(serve, f"http://127.0.0.1:{checkout.api_port}/readyz").start()
    try:
        yield
    finally:
        server.stop()


def report(checkout: Checkout) -> dict:
    return json.loads((checkout.root / "reports" / f"{YESTERDAY}.json").read_text(encoding="utf-8"))


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
    checkout.move_issuer()  # "Moving a port"
    checkout.move_api()
    discovery = f"http://127.0.0.1:{checkout.issuer_port}/oidc/.well-known/openid-configuration"
    issuer = checkout.server(issuer_line, discovery).start()
    try:
        with api(checkout, api_lines):
            result = checkout.run(worker_line)
    finally:
        issuer.stop()
    assert report(checkout)["orders"] == 1000  # the seeded day, read back through the API with a token
    assert f"{YESTERDAY} (UTC): 1,000 orders" in result.stdout


def test_use_with_logto_as_written(tmp_path):
    """The bootstrap app's settings, one command, then the API and the worker on the new tenant."""
    dotenv, (provision,) = section_blocks("Use with Logto Cloud / Logto OSS")
    _setup, _issuer, api_lines, (worker_line,) = section_blocks("Run it by hand in three terminals")
    checkout = Checkout(tmp_path / "repo")
    tenant_port = checkout.issuer_port
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
    for line in dotenv:
        checkout.add_to_dotenv(checkout.localized(line) + "\n")
    checkout.move_api()
    try:
        first = checkout.run(provision).stdout.splitlines()
        assert re.fullmatch(r"created [1-9]\d*, updated 0, unchanged \d+, conflicts 0", first[-1]), first
        again = checkout.run(provision).stdout.splitlines()
        assert re.fullmatch(r"created 0, updated 0, unchanged \d+, conflicts 0", again[-1]), again
        assert "LOGTO_APP_SECRET=" in (checkout.root / ".env").read_text()
        assert (checkout.root / ".env").stat().st_mode & 0o777 == 0o600
        with api(checkout, api_lines):  # "Start the API and the worker as in three terminals"
            result = checkout.run(worker_line)
    finally:
        tenant.stop()
    assert report(checkout)["orders"] == 1000
    assert f"{YESTERDAY} (UTC): 1,000 orders" in result.stdout
