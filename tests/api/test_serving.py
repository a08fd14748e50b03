"""The API under real gunicorn with gunicorn.conf.py: logs on stderr, request ids, no secret in a log."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest
import requests

from tests.conftest import api_process_env
from tests.support import GUNICORN_CONF, ServerProcess, clean_env, free_port, gunicorn_argv

REPO = GUNICORN_CONF.parent
PRODUCT = {"name": "Blue Mug", "price": 1999, "currency": "USD"}
SECRET = "eyJhbGciOiJFUzM4NCJ9.c2VjcmV0LXRva2Vu.c2ln"  # shaped like a token, must never be logged


def serve(tmp_path, jwks_server, database_url, **settings: str) -> ServerProcess:
    port = free_port()
    env = api_process_env(jwks_server, database_url, **settings)
    process = ServerProcess(
        gunicorn_argv(port, workers=2), env=env, cwd=tmp_path, ready_url=f"http://127.0.0.1:{port}/healthz"
    )
    process.base = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]  # test-only attribute
    return process


def logged(process: ServerProcess, expected: str, timeout: float = 10.0) -> str:
    """The server's output once it contains ``expected`` (access lines follow the response)."""
    deadline = time.monotonic() + timeout
    while expected not in (text := process.log_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return text


@pytest.fixture
def database_url(tmp_path):
    return f"sqlite:///{tmp_path / 'shop.sqlite'}"


def test_text_logs_carry_the_request_id_and_never_the_token(tmp_path, jwks_server, database_url, make_token):
    with serve(tmp_path, jwks_server, database_url) as server:
        token = make_token()
        fetched = requests.get(
            f"{server.base}/openapi.json?access_token={token}", headers={"X-Request-ID": "keys-1"}, timeout=10
        )
        requests.get(f"{server.base}/products", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        response = requests.get(
            f"{server.base}/products?access_token={SECRET}&limit=1",
            headers={"Authorization": f"Bearer {SECRET}", "X-Request-ID": "trace-0123.abc"},
            timeout=10,
        )
        assert response.status_code == 401
        assert response.headers["X-Request-ID"] == "trace-0123.abc"
        output = logged(server, '"GET /products HTTP/1.1" 401')
    assert fetched.status_code == 400  # an unknown query parameter, refused; and not logged
    assert SECRET not in output and token not in output and "access_token" not in output, output
    lines = output.splitlines()
    # The key fetch of the first token check is logged (INFO), as its failures would be.
    assert any(" INFO shopping_api.jwks " in line and "JWKS fetched" in line for line in lines), output
    # The app's own line (the token check's reason) reaches stderr at INFO, with the request id...
    [rejected] = [line for line in lines if "rejected access token" in line]
    assert " INFO shopping_api.auth [trace-0123.abc] " in rejected
    # ...and so does gunicorn's access line, without the query string.
    [access] = [line for line in lines if '"GET /products HTTP/1.1" 401' in line]
    assert "[trace-0123.abc]" in access and "gunicorn.access" in access


@pytest.mark.parametrize(
    "given",
    ["", "has space", "x" * 129, 'quote"d', "semi;colon", "ümlaut"],
    ids=["empty", "space", "too-long", "quote", "semicolon", "non-ascii"],
)
def test_a_malformed_request_id_is_replaced(client, given):
    headers = {"X-Request-ID": given.encode().decode("latin-1")}
    returned = client.get("/healthz", headers=headers).headers["X-Request-ID"]
    assert returned != given and re.fullmatch(r"[0-9a-f]{32}", returned)


def test_each_request_gets_its_own_id(client):
    ids = {client.get("/healthz").headers["X-Request-ID"] for _ in range(3)}
    assert len(ids) == 3


def test_control_characters_cannot_forge_a_line(tmp_path, jwks_server, database_url):
    forged = "FORGED 127.0.0.1 INFO all good"
    with serve(tmp_path, jwks_server, database_url) as server:
        response = requests.get(
            f"{server.base}/no/such%0a{forged.replace(' ', '%20')}%1b[31m",
            headers={"User-Agent": "agent\tcleared", "X-Request-ID": "forge-test"},
            timeout=10,
        )
        assert response.status_code == 404
        # gunicorn itself refuses a header holding ESC or NUL (400); a tab gets through.
        output = logged(server, "forge-test] ")
    assert "\x1b" not in output
    assert not any(line.startswith("FORGED") for line in output.splitlines()), output
    [access] = [line for line in output.splitlines() if "[forge-test]" in line and "gunicorn.access" in line]
    assert "\\x0aFORGED" in access and "\\x1b[31m" in access and "agent\\x09cleared" in access


def test_json_logs_are_one_object_per_line(tmp_path, jwks_server, database_url):
    with serve(tmp_path, jwks_server, database_url, LOG_FORMAT="json") as server:
        response = requests.get(
            f"{server.base}/products%0aFAKE?access_token={SECRET}",
            headers={"Authorization": "Bearer not-a-jwt", "X-Request-ID": "json-1"},
            timeout=10,
        )
        assert response.status_code == 404
        requests.get(f"{server.base}/products", headers={"Authorization": "Bearer x.y.z"}, timeout=10)
        output = logged(server, "rejected access token")
    records = [json.loads(line) for line in output.splitlines()]  # every line, gunicorn's too
    assert SECRET not in output
    loggers = {record["logger"] for record in records}
    assert {"gunicorn.error", "gunicorn.access", "shopping_api.auth"} <= loggers, loggers
    [access] = [r for r in records if r["logger"] == "gunicorn.access" and r["request_id"] == "json-1"]
    assert access["http"]["path"] == "/products\nFAKE" and access["http"]["status"] == "404"
    assert all({"time", "level", "logger", "message", "request_id"} <= record.keys() for record in records)


def run_gunicorn(cwd, argv: list[str], **settings: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, env=clean_env(**settings), cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def test_plain_gunicorn_from_the_repository_root_reads_the_config():
    # The development command, exactly: the settings check of gunicorn.conf.py runs in the master.
    result = run_gunicorn(
        REPO, [sys.executable, "-m", "gunicorn", "shopping_api:create_app()"], TOKEN_LEEWAY_SECONDS="soon"
    )
    assert result.returncode == 3, result.stderr
    assert "shopping-api: bad setting: TOKEN_LEEWAY_SECONDS: " in result.stderr
    assert "Booting worker" not in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("name", "value"),
    [
        # gunicorn reads WEB_CONCURRENCY and FORWARDED_ALLOW_IPS from the environment itself, before
        # any config file: "many" or "proxy.internal" there is gunicorn's own one-line error (status 1).
        ("WEB_CONCURRENCY", "0"),
        ("WEB_CONCURRENCY", "1000"),
        ("SHOPPING_API_BIND", "localhost"),
        ("LOG_FORMAT", "xml"),
    ],
)
def test_a_bad_serving_setting_is_one_line(tmp_path, name, value):
    result = run_gunicorn(tmp_path, gunicorn_argv(free_port()), **{name: value})
    assert result.returncode == 3, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith(f"shopping-api: bad setting: {name}: ")


def test_settings_are_checked_before_any_worker_starts(tmp_path):
    result = run_gunicorn(tmp_path, gunicorn_argv(free_port(), workers=4), DATABASE_URL="mysql://x/y")
    assert result.returncode == 3, result.stderr
    assert "Booting worker" not in result.stderr and "Traceback" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if "bad setting" in line]
    assert line == "shopping-api: bad setting: DATABASE_URL: must be a sqlite:// or postgresql+psycopg:// URL"


@pytest.fixture
def served_app(app, tmp_path, jwks_server, database_url):
    """gunicorn on a database whose schema ``app`` created."""
    with serve(tmp_path, jwks_server, database_url) as server:
        yield server


def chunks(data: bytes, size: int = 4096):
    """A generator body: requests sends it with Transfer-Encoding: chunked, no Content-Length."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
def test_a_body_over_the_limit_is_413_however_it_is_sent(served_app, make_token, chunked):
    from shopping_api.validation import MAX_CONTENT_LENGTH

    # Valid JSON followed by whitespace: any prefix past the object is valid JSON too.
    body = json.dumps(PRODUCT | {"sku": "TOO-BIG"}).encode()
    body += b" " * (MAX_CONTENT_LENGTH + 1 - len(body))
    headers = {"Authorization": f"Bearer {make_token()}", "Content-Type": "application/json"}
    response = requests.post(
        f"{served_app.base}/products", data=chunks(body) if chunked else body, headers=headers, timeout=30
    )
    assert response.status_code == 413 and response.json()["error"] == "request_entity_too_large"
    listing = requests.get(f"{served_app.base}/products", headers=headers, timeout=10).json()
    assert listing["products"] == []


def test_a_chunked_body_at_the_limit_is_accepted(served_app, make_token):
    from shopping_api.validation import MAX_CONTENT_LENGTH

    body = json.dumps(PRODUCT | {"sku": "JUST-FITS"}).encode()
    body += b" " * (MAX_CONTENT_LENGTH - len(body))
    headers = {"Authorization": f"Bearer {make_token()}", "Content-Type": "application/json"}
    response = requests.post(f"{served_app.base}/products", data=chunks(body), headers=headers, timeout=30)
    assert response.status_code == 201, response.text


def test_one_log_level_for_every_line(tmp_path, jwks_server, database_url):
    with serve(tmp_path, jwks_server, database_url, LOG_LEVEL="warning") as server:
        requests.get(f"{server.base}/products", headers={"Authorization": "Bearer x.y.z"}, timeout=10)
        requests.get(f"{server.base}/no/such/path", timeout=10)
        time.sleep(0.5)  # the access line would follow the response
        output = server.log_text()
    assert "rejected access token" not in output and "/no/such/path" not in output, output
    assert "Booting worker" not in output  # gunicorn's own INFO lines follow the same level
