"""Schemathesis, with all its checks, against the API under real gunicorn: no response contradicts
/openapi.json (status codes, bodies, headers, content types, refusals of invalid input, acceptance
of valid input, required headers, methods, authentication).

The overrides in schemathesis.toml beside this file are the answers that depend on stored state (a
cursor the API never issued, a product that does not exist, a stale ETag), each declared in the
document. Bounded (fixed seed, a few dozen examples per operation) to stay well under a minute.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from shopping_api.openapi import operations
from tests.conftest import api_process_env
from tests.support import ServerProcess, clean_env, free_port, gunicorn_argv, script

CONFIG = Path(__file__).with_name("schemathesis.toml")
EXAMPLES = 40


@pytest.mark.slow
def test_schemathesis_finds_nothing_the_document_does_not_say(
    app, database_url, jwks_server, make_token, tmp_path
):
    port = free_port()
    env = api_process_env(jwks_server, database_url)
    base = f"http://127.0.0.1:{port}"
    with ServerProcess(gunicorn_argv(port, workers=2), env=env, cwd=tmp_path, ready_url=f"{base}/healthz"):
        result = subprocess.run(
            [
                script("schemathesis"),
                "--config-file",
                str(CONFIG),
                "run",
                f"{base}/openapi.json",
                "--checks",
                "all",
                "--header",
                f"Authorization: Bearer {make_token()}",
                "--max-examples",
                str(EXAMPLES),
                "--seed",
                "20261120",
                # One worker: hypothesis describes filters with ast.parse, which CPython 3.11
                # does not support from several threads at once.
                "--workers",
                "1",
                "--no-color",
            ],
            env=clean_env(SCHEMATHESIS_TELEMETRY="false", NO_COLOR="1"),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    summary = result.stdout[result.stdout.rindex("SUMMARY") :]
    # Every operation of the document was exercised (schemathesis leaves out the document's own URL).
    tested = len({(path, method) for path, method, *_ in operations(app)} - {("/openapi.json", "get")})
    assert f"Tested: {tested}\n" in summary and tested >= 10, summary
    assert "passed" in summary and "failed" not in summary, summary
