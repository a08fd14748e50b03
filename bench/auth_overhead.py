"""What does the token check cost? Server CPU time per request of GET /products?limit=20 with a
valid token, against the same view served without the check, side by side in one run.

    .venv/bin/python bench/auth_overhead.py [--requests 300] [--rounds 11] [--workers 2] [--clients 2]

Four variants of the same view, in one app: open (no check), behind a bare ES384 signature check
(base64 and DER decoding plus ``cryptography``'s ECDSA verify, nothing else: the least any check
of a new token must do), and behind the real token check with one token reused for every request
(hot: a real M2M client reuses its token for an hour) or a new token on every request. Figures,
each printed with its target where it has one:

- hot: extra CPU per request over the open route, <= 40 us;
- new token: extra CPU per request over the bare ES384 check, <= 40 us;
- both under gunicorn (sync workers) and in process (the WSGI app called directly).

How it measures. Server CPU is the gunicorn workers' own CPU time (user + system, every thread),
read from each worker's process CPU clock before and after each phase (Linux), divided by the
requests of the phase: it does not count the client, and it is far steadier than requests per
second on a shared machine. A round runs the four phases back to back with the same number of
requests each (new tokens are signed beforehand, so the client only sends); rounds repeat and
the figures are medians over rounds, with every round shown. In process, the variants take turns
call by call and each figure is the median over calls. Requests per second (wall clock) are
printed beside, for orientation only.

So that the load generator does not steal the server's CPU unnoticed, gunicorn (master and
workers) is pinned to one core and the client processes to another (``os.sched_setaffinity``;
with fewer than two cores nothing is pinned and the output says so), and the client's own CPU
time per request is printed too. Other programs on the machine still share the cores: the
per-round spread shows how much they moved the figures.

The extra variants are built here, for the benchmark only (``create_bench_app``); no setting of
the real app can switch authentication off. A counting JWKS server stands in for Logto, so the
run also reports JWKS fetches after start-up (target 0).
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature  # noqa: E402
from joserfc import jwt  # noqa: E402
from joserfc.jwk import ECKey  # noqa: E402

RESOURCE = "https://shopping.api"
ISSUER = "http://127.0.0.1:3001/oidc"
PATH = "/products?limit=20"
TARGET_US = 40.0
PHASES = ("open", "bare", "hot", "new")


def create_bench_app() -> Any:
    """The real app plus two variants of ``GET /products``, for the benchmark only.

    ``/open/products``: the same view without ``require_oauth``. ``/bare/products``: the same view
    behind a bare ES384 signature check (the least any token check must do, and nothing else).
    """
    from flask import request

    from shopping_api import create_app

    app = create_app()
    endpoint = next(
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if rule.rule == "/products" and "GET" in (rule.methods or ())
    )
    view = getattr(app.view_functions[endpoint], "__wrapped__")  # noqa: B009 - the view under require_oauth
    public = ECKey.import_key(json.loads(os.environ["BENCH_PUBLIC_JWK"])).public_key

    def bare_products(**view_args: Any) -> Any:
        der, signing_input = signature_check(request.headers["Authorization"].removeprefix("Bearer "))
        public.verify(der, signing_input, ec.ECDSA(hashes.SHA384()))
        return view(**view_args)

    app.add_url_rule("/open/products", "open_products", view)
    app.add_url_rule("/bare/products", "bare_products", bare_products)
    return app


class CountingJwks:
    def __init__(self, key: ECKey) -> None:
        self.fetches = 0
        owner = self
        body = json.dumps({"keys": [key.as_dict(private=False)]}).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.fetches += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/jwk-set+json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/oidc/jwks"


def make_tokens(key: ECKey, count: int) -> list[str]:
    now = int(time.time())
    return [
        jwt.encode(
            {"alg": "ES384", "typ": "at+jwt", "kid": key.kid},
            {
                "jti": uuid.uuid4().hex[:21],
                "sub": "bench-app",
                "iat": now,
                "exp": now + 3600,
                "scope": "read:products",
                "client_id": "bench-app",
                "iss": ISSUER,
                "aud": RESOURCE,
            },
            key,
            algorithms=["ES384"],
        )
        for _ in range(count)
    ]


# -- CPU time ---------------------------------------------------------------------------------


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) of another process, with nanosecond resolution.

    The clock id is what clock_getcpuclockid(3) returns for ``pid`` on Linux; /proc/<pid>/stat
    would do too, in 10 ms ticks, far too coarse for a few hundred requests.
    """
    return time.clock_gettime(((~pid) << 3) | 2)


def children(pid: int) -> list[int]:
    """The gunicorn workers: processes whose parent is the master."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rpartition(")")[2].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, ValueError):
                continue
    return found


def workers_cpu(pids: Iterable[int]) -> float:
    return sum(process_cpu(pid) for pid in pids)


# -- the load: closed-loop client processes, pinned away from the server ----------------------


def client_loop(
    port: int, headers: list[dict[str, str]], path: str, core: int | None, start: Any, result: Any
) -> None:
    if core is not None:
        os.sched_setaffinity(0, {core})
    conn = http.client.HTTPConnection("127.0.0.1", port)
    start.wait()
    cpu, wall = time.process_time(), time.perf_counter()
    for header in headers:
        conn.request("GET", path, headers=header)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise SystemExit(f"unexpected status {response.status} on {path}")
    result.put((time.process_time() - cpu, time.perf_counter() - wall))


def run_phase(
    port: int, workers: list[int], per_client: list[list[dict[str, str]]], path: str, core: int | None
) -> tuple[float, float, float, int]:
    """Send every request of the phase; return (server CPU s, client CPU s, wall s, requests)."""
    start = multiprocessing.Event()
    result: multiprocessing.Queue[tuple[float, float]] = multiprocessing.Queue()
    procs = [
        multiprocessing.Process(target=client_loop, args=(port, headers, path, core, start, result))
        for headers in per_client
    ]
    for proc in procs:
        proc.start()
    time.sleep(0.2)  # let the clients start before the clock does
    before = workers_cpu(workers)
    started = time.perf_counter()
    start.set()
    outcomes = [result.get() for _ in procs]
    wall = time.perf_counter() - started
    server = workers_cpu(workers) - before
    for proc in procs:
        proc.join()
        if proc.exitcode:
            raise SystemExit("a client failed")
    return server, sum(o[0] for o in outcomes), wall, sum(len(h) for h in per_client)


# -- in process: the same app, called as WSGI, no network --------------------------------------


def in_process(
    key: ECKey, jwks_url: str, database_url: str, calls: int, rounds: int
) -> dict[str, list[float]]:
    """Median CPU microseconds per call of each kind and round, calling the WSGI app directly.

    The kinds take turns call by call (open, bare, hot, new token, and the verify alone), so
    drift and neighbours hit them alike; the median per kind ignores calls an interrupt inflated.
    """
    from werkzeug.test import EnvironBuilder

    os.environ.update(
        DATABASE_URL=database_url,
        LOGTO_ISSUER=ISSUER,
        LOGTO_JWKS_URI=jwks_url,
        SHOPPING_API_RESOURCE=RESOURCE,
        BENCH_PUBLIC_JWK=json.dumps(key.as_dict(private=False)),
    )
    app = create_bench_app()

    def environ(path: str, token: str | None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return EnvironBuilder(path=path, query_string="limit=20", headers=list(headers.items())).get_environ()

    def start_response(*_args: object) -> None:
        pass

    verifier = ECKey.import_key(key.as_dict(private=False)).public_key
    clock = time.process_time_ns
    medians: dict[str, list[float]] = {kind: [] for kind in (*PHASES, "verify")}
    hot_token = make_tokens(key, 1)[0]
    for _ in range(50):  # warm-up: imports, first queries, the hot token's cache entry
        for _chunk in app.wsgi_app(environ("/products", hot_token), start_response):
            pass
    for _ in range(rounds):
        fresh = make_tokens(key, calls)
        kinds: dict[str, list[Any]] = {
            "open": [environ("/open/products", None)] * calls,
            "bare": [environ("/bare/products", token) for token in fresh],
            "hot": [environ("/products", hot_token)] * calls,
            "new": [environ("/products", token) for token in fresh],
            "verify": [signature_check(token) for token in make_tokens(key, calls)],
        }
        spent: dict[str, list[int]] = {kind: [] for kind in kinds}
        for i in range(calls):
            for kind, items in kinds.items():
                item = items[i]
                started = clock()
                if kind == "verify":
                    verifier.verify(item[0], item[1], ec.ECDSA(hashes.SHA384()))
                else:
                    for _chunk in app.wsgi_app(dict(item), start_response):
                        pass
                spent[kind].append(clock() - started)
        for kind, values in spent.items():
            medians[kind].append(statistics.median(values) / 1e3)
    return medians


def signature_check(token: str) -> tuple[bytes, bytes]:
    """What a bare ES384 check verifies: the DER signature and the signing input of ``token``."""
    header, payload, signature = token.split(".")
    raw = base64.urlsafe_b64decode(signature + "==")
    der = encode_dss_signature(int.from_bytes(raw[:48], "big"), int.from_bytes(raw[48:], "big"))
    return der, f"{header}.{payload}".encode()


# -- gunicorn -----------------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)


def start_gunicorn(port: int, env: dict[str, str], workers: int, core: int | None) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", "-w", str(workers)]
    argv += ["--log-level", "warning", "--no-control-socket", "bench.auth_overhead:create_bench_app()"]

    def pin() -> None:
        if core is not None:
            os.sched_setaffinity(0, {core})  # inherited by every worker

    proc = subprocess.Popen(argv, env=env, cwd=ROOT, preexec_fn=pin)  # only sets the CPU affinity
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200 and len(children(proc.pid)) == workers:
                return proc
        except OSError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("gunicorn did not start")


# -- report -------------------------------------------------------------------------------------


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):7.1f}  [{' '.join(f'{v:.0f}' for v in values)}]"


def verdict(values: list[float]) -> str:
    return "meets" if statistics.median(values) <= TARGET_US else "MISSES"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="requests per phase and round")
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--inproc-calls", type=int, default=300, help="calls per kind and round in process")
    args = parser.parse_args()

    cores = sorted(os.sched_getaffinity(0))
    server_core, client_core = (cores[0], cores[1]) if len(cores) >= 2 else (None, None)
    key = ECKey.generate_key("P-384", parameters={"alg": "ES384", "use": "sig"}, auto_kid=True)
    jwks = CountingJwks(key)
    hot = make_tokens(key, 1)[0]
    per_client = args.requests // args.clients

    with tempfile.TemporaryDirectory() as tmp:
        database_url = f"sqlite:///{tmp}/bench.sqlite"
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "LOGTO_ISSUER": ISSUER,
            "LOGTO_JWKS_URI": jwks.url,
            "SHOPPING_API_RESOURCE": RESOURCE,
            "PYTHONPATH": str(ROOT),
            "BENCH_PUBLIC_JWK": json.dumps(key.as_dict(private=False)),
        }
        for command in (["init-db"], ["seed", "--products", "50", "--orders", "0"]):
            subprocess.run(
                [sys.executable, "-m", "flask", "--app", "shopping_api", *command],
                env=env,
                cwd=tmp,
                check=True,
                capture_output=True,
            )
        port = free_port()
        proc = start_gunicorn(port, env, args.workers, server_core)
        results: dict[str, list[tuple[float, float, float, int]]] = {phase: [] for phase in PHASES}
        try:
            workers = children(proc.pid)
            wait_for(lambda: jwks.fetches >= args.workers)  # each worker loads the keys as it starts
            start_fetches = jwks.fetches
            # Warm-up: every worker imports, connects and caches the hot token.
            warm = [[{"Authorization": f"Bearer {hot}"}] * 200 for _ in range(args.clients)]
            run_phase(port, workers, warm, PATH, client_core)
            run_phase(port, workers, [[{}] * 200 for _ in range(args.clients)], "/open" + PATH, client_core)
            for _ in range(args.rounds):
                fresh = make_tokens(key, per_client * args.clients)
                loads: dict[str, tuple[list[list[dict[str, str]]], str]] = {
                    "open": ([[{}] * per_client for _ in range(args.clients)], "/open" + PATH),
                    "bare": (
                        [
                            [
                                {"Authorization": f"Bearer {t}"}
                                for t in fresh[c * per_client : (c + 1) * per_client]
                            ]
                            for c in range(args.clients)
                        ],
                        "/bare" + PATH,
                    ),
                    "hot": ([[{"Authorization": f"Bearer {hot}"}] * per_client] * args.clients, PATH),
                    "new": (
                        [
                            [
                                {"Authorization": f"Bearer {t}"}
                                for t in fresh[c * per_client : (c + 1) * per_client]
                            ]
                            for c in range(args.clients)
                        ],
                        PATH,
                    ),
                }
                for phase in PHASES:
                    headers, path = loads[phase]
                    results[phase].append(run_phase(port, workers, headers, path, client_core))
            fetches_after_start = jwks.fetches - start_fetches
            if sorted(children(proc.pid)) != sorted(workers):
                print("warning: a gunicorn worker was replaced during the run")
        finally:
            proc.terminate()
            proc.wait()
        local = in_process(key, jwks.url, database_url, args.inproc_calls, args.rounds)

    def server_us(phase: str) -> list[float]:
        return [r[0] / r[3] * 1e6 for r in results[phase]]

    def client_us(phase: str) -> list[float]:
        return [r[1] / r[3] * 1e6 for r in results[phase]]

    def rate(phase: str) -> list[float]:
        return [r[3] / r[2] for r in results[phase]]

    def minus(a: list[float], b: list[float]) -> list[float]:
        return [x - y for x, y in zip(a, b, strict=True)]

    extras = {
        "gunicorn": {
            "hot": minus(server_us("hot"), server_us("open")),
            "bare": minus(server_us("bare"), server_us("open")),
            "new": minus(server_us("new"), server_us("open")),
            "new-bare": minus(server_us("new"), server_us("bare")),
        },
        "in process": {
            "hot": minus(local["hot"], local["open"]),
            "bare": minus(local["bare"], local["open"]),
            "new": minus(local["new"], local["open"]),
            "new-bare": minus(local["new"], local["bare"]),
        },
    }
    pinning = (
        f"gunicorn pinned to core {server_core}, clients to core {client_core}"
        if server_core is not None
        else "fewer than two cores: nothing pinned, client and server share the CPU"
    )
    labels = {
        "open": "open route (no check)",
        "bare": "bare ES384 verify in front",
        "hot": "token check, token reused",
        "new": "token check, new token each",
    }
    print(
        f"GET {PATH}: gunicorn -w {args.workers} (sync), {args.clients} client processes, {args.rounds} "
        f"rounds x {len(PHASES)} phases x {per_client * args.clients} requests; {pinning}"
    )
    print("CPU in microseconds per request: median over rounds, then each round")
    print()
    print(f"{'under gunicorn':32s} {'server CPU (workers)':44s} {'req/s':>6s} {'client CPU':>11s}")
    for phase in PHASES:
        print(
            f"  {labels[phase]:30s} {spread(server_us(phase)):44s} {statistics.median(rate(phase)):6.0f}"
            f" {statistics.median(client_us(phase)):11.0f}"
        )
    print()
    print(f"{'in process (WSGI call)':32s} {'CPU per call (median of calls)':44s}")
    for phase in PHASES:
        print(f"  {labels[phase]:30s} {spread(local[phase])}")
    print(f"  {'ES384 verify alone, tight loop':30s} {spread(local['verify'])}")
    print()
    print("extra CPU per request over the same route open")
    for where, figures in extras.items():
        print(f"  {where}")
        print(
            f"    {'token reused (hot)':46s} {spread(figures['hot']):44s} "
            f"target <= 40: {verdict(figures['hot'])}"
        )
        print(f"    {'bare ES384 verify':46s} {spread(figures['bare'])}")
        print(f"    {'new token each request':46s} {spread(figures['new'])}")
        print(
            f"    {'new token, beyond the bare ES384 verify':46s} {spread(figures['new-bare']):44s} "
            f"target <= 40: {verdict(figures['new-bare'])}"
        )
    print()
    print(f"JWKS fetches after start-up: {fetches_after_start} (target 0: workers load keys as they start)")


if __name__ == "__main__":
    main()
