"""deploy/nginx.conf, run for real: nginx in front of the shopping API under gunicorn, on 127.0.0.1.

The file compose mounts is used as it is, except the lines it marks ``# test:`` (where to listen,
where the API is, pid and temp paths), so what passes here is what compose runs. Needs an
``nginx`` binary (Debian: ``apt-get install nginx-light``); skipped, saying so, without one.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import requests

# The API's body limit: nginx must refuse exactly above it.
from shopping_api.validation import MAX_CONTENT_LENGTH
from tests.support import ServerProcess, clean_env, free_port, gunicorn_argv, issue_token, script

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
NGINX_CONF = ROOT / "deploy" / "nginx.conf"
_FOUND = shutil.which("nginx") or next(
    (path for path in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(path).exists()), None
)
if _FOUND is None:
    pytest.skip(
        "nginx is not installed (Debian: apt-get install nginx-light): deploy/nginx.conf not run",
        allow_module_level=True,
    )
NGINX: str = _FOUND

RESOURCE = "https://shopping.api"
ADMIN = ("m2m-admin", "admin-local-secret")


def render_conf(
    workdir: Path, *, listen_port: int, upstream_port: int, replace: dict[str, str] | None = None
) -> Path:
    """deploy/nginx.conf with only its ``# test:`` lines rewritten for a run on 127.0.0.1."""
    text = NGINX_CONF.read_text(encoding="utf-8")
    rewrites = {
        r"listen \S+;  # test: listen": f"listen 127.0.0.1:{listen_port};",
        r"set \$shopping_api \S+;  # test: upstream": f"set $shopping_api 127.0.0.1:{upstream_port};",
        r"pid \S+;  # test: pid": f"pid {workdir}/nginx.pid;",
        r"(\w+_temp_path) /tmp/(\S+);  # test: temp": rf"\1 {workdir}/\2;",
    }
    for pattern, replacement in {**rewrites, **(replace or {})}.items():
        text, count = re.subn(pattern, replacement, text)
        assert count, f"deploy/nginx.conf no longer has a line matching {pattern!r}"
    assert "# test:" not in text, "a line marked for the test was not rewritten"
    path = workdir / "nginx.conf"
    path.write_text(text, encoding="utf-8")
    return path


def start_nginx(workdir: Path, upstream_port: int, **kwargs: Any) -> tuple[ServerProcess, str]:
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = render_conf(workdir, listen_port=port, upstream_port=upstream_port, **kwargs)
    argv = [NGINX, "-c", str(conf), "-p", str(workdir), "-e", "stderr", "-g", "daemon off;"]
    check = subprocess.run([*argv[:-2], "-t"], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr
    proc = ServerProcess(argv, env=clean_env(), cwd=workdir, log_path=workdir / "nginx.log", ready_url=None)
    proc.start()
    wait_for_port(port)
    return proc, f"http://127.0.0.1:{port}"


def wait_for_port(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def raw_request(url: str, data: bytes, *, timeout: float = 15) -> bytes:
    """Send ``data`` as is on a new connection; return all that comes back until close."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        # Refused before the whole request was sent: its answer is still there to read.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def status_and_body(response: bytes) -> tuple[int, dict[str, Any]]:
    head, _, body = response.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)


@dataclass
class Proxy:
    issuer_url: str
    api_url: str  # gunicorn itself
    url: str  # nginx in front of it
    nginx: ServerProcess

    def token(self, scope: str = "read:products write:products") -> str:
        token: str = issue_token(self.issuer_url, ADMIN, RESOURCE, scope)["access_token"]
        return token

    def log(self) -> str:
        return self.nginx.log_text()


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    root = tmp_path_factory.mktemp("nginx")
    issuer_port, api_port = free_port(), free_port()
    issuer_url = f"http://127.0.0.1:{issuer_port}"
    issuer = ServerProcess(
        [script("local-issuer"), "--port", str(issuer_port), "--state-dir", str(root / "issuer")],
        env=clean_env(),
        cwd=root,
        log_path=root / "issuer.log",
        ready_url=f"{issuer_url}/oidc/.well-known/openid-configuration",
    ).start()
    api_env = clean_env(DATABASE_URL=f"sqlite:///{root / 'shop.sqlite'}", LOGTO_ENDPOINT=issuer_url)
    subprocess.run(
        [sys.executable, "-m", "flask", "--app", "shopping_api", "init-db"],
        env=api_env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    api = ServerProcess(
        gunicorn_argv(api_port, workers=2),
        env=api_env,
        cwd=root,
        log_path=root / "api.log",
        ready_url=f"http://127.0.0.1:{api_port}/healthz",
    ).start()
    nginx, url = start_nginx(root / "nginx", api_port)
    try:
        yield Proxy(issuer_url, f"http://127.0.0.1:{api_port}", url, nginx)
    finally:
        for process in (nginx, api, issuer):
            process.stop()


# -- the README's flow through the proxy ------------------------------------------------------


def test_readme_curl_through_the_proxy(proxy: Proxy) -> None:
    token = proxy.token()
    response = requests.get(f"{proxy.url}/products", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["products"] == []
    created = requests.post(
        f"{proxy.url}/products",
        headers={"Authorization": f"Bearer {token}"},
        json={"sku": "MUG-NGINX", "name": "Blue Mug", "price": 1999, "currency": "USD"},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    listed = requests.get(f"{proxy.url}/products", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert [p["sku"] for p in listed.json()["products"]] == ["MUG-NGINX"]
    # The API's own errors pass through untouched (nginx does not replace them).
    anonymous = requests.get(f"{proxy.url}/products", timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    assert anonymous.json() == requests.get(f"{proxy.api_url}/products", timeout=10).json()


def test_every_response_carries_one_request_id(proxy: Proxy) -> None:
    mine = requests.get(f"{proxy.url}/healthz", headers={"X-Request-ID": "abc-123.x:y"}, timeout=10)
    assert mine.headers["X-Request-ID"] == "abc-123.x:y"
    assert mine.raw.headers.getlist("X-Request-ID") == ["abc-123.x:y"]
    made = requests.get(f"{proxy.url}/healthz", timeout=10).headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    # Garbage (too long, odd characters) is replaced by a fresh id rather than passed on.
    odd = requests.get(f"{proxy.url}/healthz", headers={"X-Request-ID": "a b<c>" + "x" * 200}, timeout=10)
    assert re.fullmatch(r"[0-9a-f]{32}", odd.headers["X-Request-ID"])


# -- what nginx answers itself: the API's JSON shape ------------------------------------------


def assert_api_error(status: int, body: dict[str, Any], expected_status: int) -> None:
    assert status == expected_status, body
    assert set(body) == {"error", "error_description"}
    assert re.fullmatch(r"[a-z_]+", body["error"]) and body["error_description"]


def test_body_limit_equals_the_apis(proxy: Proxy) -> None:
    token = proxy.token()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    at_limit = b" " * (MAX_CONTENT_LENGTH - 2) + b"{}"
    response = requests.post(f"{proxy.url}/products", data=at_limit, headers=headers, timeout=10)
    assert response.status_code == 400 or response.status_code == 422, response.text  # the API's answer
    over = at_limit + b" "
    response = requests.post(f"{proxy.url}/products", data=over, headers=headers, timeout=10)
    assert_api_error(response.status_code, response.json(), 413)
    assert "nginx" not in response.text
    # The same shape and code as the API's own 413 for the same body sent straight to gunicorn.
    direct = requests.post(f"{proxy.api_url}/products", data=over, headers=headers, timeout=10)
    assert direct.status_code == 413 and direct.json()["error"] == response.json()["error"]


def test_chunked_body_over_the_limit_is_413(proxy: Proxy) -> None:
    token = proxy.token()
    chunk = b" " * 4096
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(MAX_CONTENT_LENGTH // 4096 + 1))
    request = (
        f"POST /products HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    ).encode()
    answer = raw_request(proxy.url, request + body + b"0\r\n\r\n")
    assert_api_error(*status_and_body(answer), 413)


def test_request_line_too_long_is_414(proxy: Proxy) -> None:
    response = requests.get(f"{proxy.url}/products?q={'a' * 9000}", timeout=10)
    assert_api_error(response.status_code, response.json(), 414)


def test_header_line_too_long_is_431(proxy: Proxy) -> None:
    response = requests.get(f"{proxy.url}/healthz", headers={"X-Big": "a" * 9000}, timeout=10)
    assert_api_error(response.status_code, response.json(), 431)


def test_too_many_headers_is_431_json(proxy: Proxy) -> None:
    """More than gunicorn's 100 header fields: gunicorn refuses it (in HTML); the client gets JSON."""
    headers = "".join(f"X-H{i}: v\r\n" for i in range(105))
    answer = raw_request(
        proxy.url, f"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}\r\n".encode()
    )
    assert_api_error(*status_and_body(answer), 431)


def test_every_request_nginx_lets_through_fits_gunicorns_limits(proxy: Proxy) -> None:
    """The longest request line and header line nginx accepts get the API's JSON answer, not
    gunicorn's HTML 400: nginx's limits are the tighter ones, so its JSON errors are what clients see."""
    longest_path = longest_accepted(proxy.url, lambda n: f"GET /{'a' * n} HTTP/1.1\r\nHost: x\r\n\r\n")
    longest_header = longest_accepted(
        proxy.url, lambda n: f"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: {'a' * n}\r\n\r\n"
    )
    assert longest_path > 4000 and longest_header > 4000
    for request, expected in (
        (f"GET /{'a' * longest_path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404),
        (
            f"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-A: {'a' * longest_header}\r\n\r\n",
            200,
        ),
    ):
        status, body = status_and_body(raw_request(proxy.url, request.encode()))
        assert status == expected, body  # gunicorn accepted it too, and the API answered


def longest_accepted(url: str, build: Callable[[int], str]) -> int:
    """Binary search for the largest n whose request nginx itself does not refuse as too large."""
    low, high = 0, 20000
    while high - low > 1:
        middle = (low + high) // 2
        request = build(middle).replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n", 1)
        answer = raw_request(url, request.encode())
        refused_by_nginx = answer.split(b" ", 2)[1] in (b"414", b"431")  # gunicorn says so in HTML
        if refused_by_nginx and b"Content-Type: application/json" in answer:
            high = middle
        else:
            low = middle
    return low


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n\r\n", 400),  # HTTP/1.1 without Host
        (b"GET / HTTP/2.5\r\nHost: x\r\n\r\n", 505),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    ],
    ids=["request-line", "header", "no-host", "version", "transfer-encoding"],
)
def test_malformed_request_is_json(proxy: Proxy, request_bytes: bytes, status: int) -> None:
    assert_api_error(*status_and_body(raw_request(proxy.url, request_bytes)), status)


def test_body_that_stops_arriving_closes_the_connection(proxy: Proxy) -> None:
    """nginx never answers a 408 (it closes the connection and logs 408): the client must not hang,
    and no gunicorn worker was ever given the half request."""
    started = time.monotonic()
    answer = raw_request(
        proxy.url, b"POST /products HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{", timeout=30
    )
    took = time.monotonic() - started
    assert answer == b"" and took < 15
    assert re.search(r'"POST /products HTTP/1.1" 408 ', proxy.log())


# -- logs -----------------------------------------------------------------------------------


def test_access_log_has_no_query_string(proxy: Proxy) -> None:
    token = proxy.token("read:orders")
    secret = "eyJzZWNyZXQiOiJjdXJzb3IifQ"
    response = requests.get(
        f"{proxy.url}/orders?date=2026-01-01&limit=5&cursor={secret}",
        headers={"Authorization": f"Bearer {token}", "X-Request-ID": "log-check-1"},
        timeout=10,
    )
    assert response.status_code in (200, 400)
    time.sleep(0.2)
    line = next(line for line in proxy.log().splitlines() if "request_id=log-check-1" in line)
    assert '"GET /orders HTTP/1.1"' in line
    assert secret not in proxy.log() and "date=2026" not in proxy.log()
    assert token not in proxy.log()


def test_a_secret_in_the_url_of_a_refused_request_reaches_no_log(proxy: Proxy) -> None:
    """nginx's error lines quote the request line: they are off, the access log says enough."""
    response = requests.post(f"{proxy.url}/products?client_secret=LEAKME413", data=b"x" * 100_000, timeout=10)
    assert response.status_code == 413
    time.sleep(0.2)
    assert "LEAKME413" not in proxy.log()
    assert re.search(r' /products HTTP/1.1" 413 ', proxy.log())  # the refusal itself is logged


@pytest.mark.parametrize("header", ["X-Forwarded-Ssl: on", "X-Forwarded-Protocol: ssl"])
def test_scheme_headers_from_a_client_change_nothing(proxy: Proxy, header: str) -> None:
    name, _, value = header.partition(": ")
    response = requests.get(f"{proxy.url}/products", headers={name: value}, timeout=10)
    assert response.status_code == 401  # the API's own answer: no token, not gunicorn's HTML 400
    assert response.json()["error"] == "unauthorized"


def test_token_in_the_url_is_refused_before_any_log(proxy: Proxy) -> None:
    token = proxy.token()
    response = requests.get(f"{proxy.url}/products?access_token={token}", timeout=10)
    assert_api_error(response.status_code, response.json(), 400)
    assert "Authorization header" in response.json()["error_description"]
    time.sleep(0.2)
    assert token not in proxy.log()
    assert token[:40] not in (Path(proxy.nginx.cwd).parent / "api.log").read_text()


# -- the API down or slow ---------------------------------------------------------------------


def test_api_down_is_502_json_with_retry_after(tmp_path: Path) -> None:
    nginx, url = start_nginx(tmp_path / "nginx", free_port())  # nothing listens there
    try:
        response = requests.get(f"{url}/products", timeout=10)
    finally:
        nginx.stop()
    assert_api_error(response.status_code, response.json(), 502)
    assert response.headers["Retry-After"] == "5"
    assert response.headers["X-Request-ID"]


def test_api_too_slow_is_504_json(tmp_path: Path) -> None:
    # An upstream that accepts and never answers; the read timeout cut to 1 s for the test.
    silent = socket.create_server(("127.0.0.1", 0))
    port = silent.getsockname()[1]
    nginx, url = start_nginx(
        tmp_path / "nginx", port, replace={r"proxy_read_timeout \d+s;": "proxy_read_timeout 1s;"}
    )
    try:
        response = requests.get(f"{url}/products", timeout=10)
    finally:
        nginx.stop()
        silent.close()
    assert_api_error(response.status_code, response.json(), 504)
    assert response.headers["Retry-After"] == "5"


# -- what reaches the API ---------------------------------------------------------------------


class _Capture(BaseHTTPRequestHandler):
    seen: ClassVar[list[dict[str, str]]] = []

    def do_GET(self) -> None:
        _Capture.seen.append(dict(self.headers.items()))
        status = int(self.path.rsplit("/", 1)[1]) if self.path.startswith("/status/") else 200
        body = json.dumps({"error": "from_the_api", "status": status}).encode()
        self.send_response(status)
        if status == 503:
            self.send_header("Retry-After", "7")
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Request-ID", "from-upstream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def capture(tmp_path: Path) -> Iterator[str]:
    """nginx in front of a server that records the headers it gets; yields nginx's URL."""
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _Capture)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    nginx, url = start_nginx(tmp_path / "nginx", upstream.server_address[1])
    try:
        yield url
    finally:
        nginx.stop()
        upstream.shutdown()
        upstream.server_close()


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422, 428, 500, 503])
def test_the_apis_own_errors_pass_untouched(capture: str, status: int) -> None:
    response = requests.get(f"{capture}/status/{status}", timeout=10)
    assert response.status_code == status
    assert response.json() == {"error": "from_the_api", "status": status}
    if status == 503:
        assert response.headers["Retry-After"] == "7"


def test_forwarded_headers_are_set_by_the_proxy_never_passed_through(capture: str) -> None:
    response = requests.get(
        f"{capture}/products",
        headers={
            "X-Forwarded-For": "6.6.6.6",
            "X-Forwarded-Proto": "https",
            "Forwarded": "for=6.6.6.6",
            "X-Request-ID": "trace-me",
        },
        timeout=10,
    )
    assert response.status_code == 200
    seen = _Capture.seen[-1]
    assert seen["X-Forwarded-For"] == "127.0.0.1"
    assert seen["X-Forwarded-Proto"] == "http"
    assert seen["X-Forwarded-Host"] == capture.removeprefix("http://")
    assert "Forwarded" not in seen
    assert seen["X-Request-ID"] == "trace-me"
    # One X-Request-ID in the answer: the one the API was given.
    assert response.raw.headers.getlist("X-Request-ID") == ["trace-me"]


# -- slow clients (issue: slowloris) -----------------------------------------------------------

SLOW_CLIENTS = 50


def trickle_headers(url: str, stop: threading.Event) -> None:
    """Open a connection and send a request's headers a byte at a time, never finishing."""
    host, port = url.removeprefix("http://").split(":")
    try:
        sock = socket.create_connection((host, int(port)), timeout=5)
    except OSError:
        return
    with sock:
        try:
            for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000:
                if stop.wait(0.2):
                    return
                sock.send(bytes([byte]))
        except OSError:
            return


def healthz_delay_under_slow_clients(url: str) -> float:
    stop = threading.Event()
    with ThreadPoolExecutor(SLOW_CLIENTS) as pool:
        for _ in range(SLOW_CLIENTS):
            pool.submit(trickle_headers, url, stop)
        time.sleep(1.5)  # every slow client has connected and is trickling
        started = time.monotonic()
        try:
            requests.get(f"{url}/healthz", timeout=5).raise_for_status()
            took = time.monotonic() - started
        except requests.RequestException:
            took = float("inf")
        finally:
            stop.set()
    return took


def test_slow_clients_do_not_delay_healthz_through_the_proxy(proxy: Proxy) -> None:
    took = healthz_delay_under_slow_clients(proxy.url)
    assert took < 3, f"/healthz took {took:.1f}s behind nginx with {SLOW_CLIENTS} slow clients"


def test_without_the_proxy_slow_clients_stall_gunicorn(proxy: Proxy) -> None:
    """The reason nginx is there: the same clients sent to gunicorn directly hold its workers."""
    took = healthz_delay_under_slow_clients(proxy.api_url)
    assert took > 3
