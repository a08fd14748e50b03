"""The README's "Run it by hand in three terminals", run as written.

The section's commands run in a copy of the repository, with the copy's ``.venv`` being the test's
own environment (``make install`` is the one line not run: it would install into it). The ports are
moved the way the section's "Moving a port" paragraph says, by lines added to ``.env``, so the run
never touches 3001 or 8000 and the paragraph is checked too.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT, ServerProcess, clean_env, copy_of_the_repository, free_port

pytestmark = pytest.mark.slow

SECTION = re.compile(r"^## Run it by hand in three terminals\n(.*?)^## ", re.M | re.S)
SH_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.M | re.S)


def section_commands() -> list[list[str]]:
    """The command lines of each ``sh`` block of the section, in order."""
    section = SECTION.search((ROOT / "README.md").read_text(encoding="utf-8"))
    assert section, "README.md has no section 'Run it by hand in three terminals'"
    return [
        [line for line in block.splitlines() if line.strip() and not line.startswith("#")]
        for block in SH_BLOCK.findall(section.group(1))
    ]


def test_the_section_is_what_this_test_runs():
    setup, issuer, api, worker = section_commands()
    assert setup == ["make install", "cp .env.example .env"]
    assert [len(issuer), len(api), len(worker)] == [1, 3, 1]


def test_three_terminals_as_written(tmp_path):
    setup, (issuer_line,), api_lines, (worker_line,) = section_commands()
    copy = copy_of_the_repository(tmp_path / "repo")
    (copy / ".venv").symlink_to(Path(sys.prefix))  # the environment `make install` would have made
    env = clean_env(PYTHONPATH=str(copy))  # the copy's packages, not the installed checkout's

    def run(line: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["bash", "-c", line], cwd=copy, env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, f"{line}\n{result.stdout}\n{result.stderr}"
        return result

    assert setup[0] == "make install"
    for line in setup[1:]:
        run(line)
    issuer_port, api_port = free_port(), free_port()
    with (copy / ".env").open("a", encoding="utf-8") as dotenv:  # "Moving a port"
        dotenv.write(
            f"LOCAL_ISSUER_PORT={issuer_port}\nLOGTO_ENDPOINT=http://127.0.0.1:{issuer_port}\n"
            f"SHOPPING_API_BIND=127.0.0.1:{api_port}\nSHOPPING_API_URL=http://127.0.0.1:{api_port}\n"
        )
    servers = []
    try:
        servers.append(
            ServerProcess(
                ["bash", "-c", f"exec {issuer_line}"],
                env=env,
                cwd=copy,
                ready_url=f"http://127.0.0.1:{issuer_port}/oidc/.well-known/openid-configuration",
            ).start()
        )
        *setup_api, serve = api_lines
        for line in setup_api:
            run(line)
        servers.append(
            ServerProcess(
                ["bash", "-c", f"exec {serve}"],
                env=env,
                cwd=copy,
                ready_url=f"http://127.0.0.1:{api_port}/readyz",
            ).start()
        )
        result = run(worker_line)
    finally:
        for server in reversed(servers):
            server.stop()
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    report = json.loads((copy / "reports" / f"{yesterday}.json").read_text(encoding="utf-8"))
    assert report["orders"] == 1000  # the seeded day, read back through the API with a token
    assert f"{yesterday} (UTC): 1,000 orders" in result.stdout
