"""``make demo``, as a newcomer runs it: exit code, the narration's key lines, nothing left running."""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from dotenv import dotenv_values

from tests.support import clean_env

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SECRETS = ("admin-local-secret", "stats-worker-local-secret", "bootstrap-admin-local-secret")
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.")
SERVICE_URL = re.compile(r"^\s+(local issuer|shopping API)\s+http://127\.0\.0\.1:(\d+)", re.MULTILINE)


def make_demo(workdir: Path, *extra: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``make demo`` in the repository, using the interpreter running the tests.

    ``-o`` keeps make from reinstalling the virtualenv when pyproject.toml is newer than it.
    """
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    args = " ".join(["--workdir", str(workdir), *extra])
    return subprocess.run(
        [
            make,
            "--no-print-directory",
            "-C",
            str(ROOT),
            "-o",
            ".venv/.installed",
            f"BIN={Path(sys.executable).parent}",
            "demo",
            f"DEMO_ARGS={args}",
        ],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def service_ports(output: str) -> dict[str, int]:
    return {name: int(port) for name, port in SERVICE_URL.findall(output)}


def test_make_demo_narrates_the_flow_and_runs_twice(tmp_path):
    workdir = tmp_path / "demo"
    for run in (1, 2):  # the second run starts from the first one's leftovers
        result = make_demo(workdir)
        out = result.stdout
        assert result.returncode == 0, f"run {run}:\n{out}\n{result.stderr}"
        for line in (
            "$ logto-m2m provision --env-file credentials.env --with-users",
            "created 13, updated 0, unchanged 3, conflicts 0",
            "Nothing to change: the tenant already matches the tenant file.",
            "created 0, updated 0, unchanged 16, conflicts 0",
            "-> POST /oidc/token HTTP/1.1",
            "&resource=https%3A%2F%2Fshopping.api",
            "<- 200 OK",
            'token_type    "Bearer"',
            'alg  "ES384"',
            'typ  "at+jwt"',
            'aud        "https://shopping.api"',
            "<- 401 Unauthorized",
            "<- 403 Forbidden",
            'error="insufficient_scope"',
            "<- 201 Created",
            "$ stats-worker once --date",
            "Logto custom data: 4 synced, 0 skipped, 0 failed",
            "Matches the orders the demo placed",
            # The API's side: its key fetch, and its verdict on each token it was shown.
            "INFO shopping_api.jwks: JWKS fetched (start-up): 1 signing key(s)",
            "The API's checks (shopping_api/auth.py): every check passed",
            "The API's checks (shopping_api/auth.py): refused at the scope check",
            "The API's checks (shopping_api/auth.py): refused at the aud check",
            "rejected access token: lacks scope write:products",
            "rejected access token: claim aud",
            "shopping API  stopped (exit status 0)",
            "local issuer  stopped (exit status 0)",
        ):
            assert line in out, f"run {run}: {line!r} missing from:\n{out}"
        # The apps were created by provisioning: Logto-assigned ids, secrets never shown.
        credentials = dotenv_values(workdir / "credentials.env")
        admin_id = credentials["SHOPPING_ADMIN_APP_ID"]
        assert f"Authorization: Basic base64({admin_id}:<app secret, not shown>)" in out
        assert re.search(r"-> GET /api/users/\w+/custom-data HTTP/1.1", out)
        secrets = (*SECRETS, credentials["SHOPPING_ADMIN_APP_SECRET"], credentials["LOGTO_APP_SECRET"])
        for secret in secrets:
            assert secret not in out + result.stderr
        assert not JWT.search(out), "a whole access token was printed"
        ports = service_ports(out)
        assert set(ports) == {"local issuer", "shopping API"}
        assert not any(listening(port) for port in ports.values())
        # Each step names the files that do it; every one of them exists.
        code = " ".join(re.findall(r"^  code: (.+)$", out, re.MULTILINE))
        named = re.findall(r"[\w.]+(?:/[\w.]*)+|gunicorn\.conf\.py", code)
        assert len(named) >= 20, code
        for path in named:
            assert (ROOT / path).exists(), f"the demo names {path}, which does not exist"
        # one report beside .status/ (the worker's last-run records, for `stats-worker status`)
        assert len([p for p in (workdir / "reports").iterdir() if p.name != ".status"]) == 1


def test_ctrl_c_stops_every_process(tmp_path):
    env = clean_env()
    proc = subprocess.Popen(
        [sys.executable, "-m", "demo", "--workdir", str(tmp_path / "demo")],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out = ""
    try:
        deadline = time.monotonic() + 60
        while ". The admin app" not in out and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            out += line
        ports = service_ports(out)
        assert set(ports) == {"local issuer", "shopping API"}, out
        assert all(listening(port) for port in ports.values())
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, out + rest + err
    assert "Interrupted" in err
    assert not any(listening(port) for port in ports.values())


def test_a_failure_stops_what_was_started_and_says_why(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "demo", "--workdir", str(tmp_path / "demo"), "--api-port", str(busy)],
            cwd=tmp_path,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=90,
        )
    assert result.returncode == 1
    assert (
        f"The demo failed: port {busy} is in use: stop what listens there or drop --api-port" in result.stderr
    )
    issuer_port = service_ports(result.stdout)["local issuer"]
    assert not listening(issuer_port)


def test_a_directory_the_demo_did_not_make_is_left_alone(tmp_path):
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "keep.json").write_text("{}")
    result = subprocess.run(
        [sys.executable, "-m", "demo", "--workdir", str(tmp_path)],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "is not empty and was not made by the demo" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reports"]
    assert (tmp_path / "reports" / "keep.json").read_text() == "{}"


class AnswersEverything(BaseHTTPRequestHandler):
    """Someone else's server: 200 and an empty JSON object to any request, each one recorded."""

    def answer(self) -> None:
        self.server.requests.append(f"{self.command} {self.path}")
        body = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = answer

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def foreign_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), AnswersEverything)
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize("option", ["--issuer-port", "--api-port"])
def test_a_port_taken_by_another_server_is_refused_not_used(tmp_path, foreign_server, option):
    busy = foreign_server.server_address[1]
    workdir = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "demo", "--workdir", str(workdir), option, str(busy)],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert (
        f"The demo failed: port {busy} is in use: stop what listens there or drop {option}" in result.stderr
    )
    assert foreign_server.requests == []  # no readiness check, no token request, no API call
    logs = sorted(p.name for p in (workdir / "logs").iterdir())
    if option == "--issuer-port":
        assert logs == []  # nothing was started
        assert "local issuer" not in service_ports(result.stdout)
    else:
        assert logs == ["local-issuer.log"]  # the issuer was started, then stopped
        assert not listening(service_ports(result.stdout)["local issuer"])
    assert "shopping API" not in service_ports(result.stdout)


def test_the_same_port_twice_is_refused(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "demo",
            "--workdir",
            str(tmp_path / "demo"),
            "--issuer-port",
            "8000",
            "--api-port",
            "8000",
        ],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "--issuer-port and --api-port must differ" in result.stderr
    assert not (tmp_path / "demo").exists()
