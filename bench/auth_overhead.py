"""What does the token check cost? Requests/s of GET /products with a valid token, against the
same view served without the check, both under gunicorn, in one run on this machine.

    .venv/bin/python bench/auth_overhead.py [--seconds 5] [--rounds 5] [--workers 2] [--clients 2]

The open variant is built here, for the benchmark only (``create_bench_app``): the real app plus
the same view at ``/open/products`` with the decorator peeled off. No setting of the real app can
switch authentication off.
A counting JWKS server stands in for Logto, so the run also reports JWKS fetches after warm-up.
Like a real M2M client, the load reuses one token (Logto tokens live an hour).
"""

from __future__ import annotations

import argparse
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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from joserfc import jwt  # noqa: E402 -- after the sys.path line above, so the script runs from a checkout
from joserfc.jwk import ECKey  # noqa: E402 -- likewise

RESOURCE = "https://shopping.api"
PATH = "/products?limit=20"


def create_bench_app():
    """The real app plus ``GET /open/products``: the same view without ``require_oauth``.

    Built here, for the benchmark only. Both routes live in one app under one gunicorn, and each
    client alternates between them request by request, so load and drift hit both sides alike.
    """
    from shopping_api import create_app

    app = create_app()
    endpoint = next(
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if rule.rule == "/products" and "GET" in rule.methods
    )
    app.add_url_rule("/open/products", "open_products", app.view_functions[endpoint].__wrapped__)
    return app


class CountingJwks:
    def __init__(self, key: ECKey) -> None:
        self.fetches = 0
        owner = self
        body = json.dumps({"keys": [key.as_dict(private=False)]}).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                owner.fetches += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/jwk-set+json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/oidc/jwks"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def client_loop(port: int, token: str, seconds: float, result) -> None:
    """Alternate protected and open requests; add up the time each kind took."""
    conn = http.client.HTTPConnection("127.0.0.1", port)
    kinds = [("protected", PATH, {"Authorization": f"Bearer {token}"}), ("open", "/open" + PATH, {})]
    spent = {"protected": 0.0, "open": 0.0}
    count = {"protected": 0, "open": 0}
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for kind, path, headers in kinds:
            started = time.perf_counter()
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            response.read()
            spent[kind] += time.perf_counter() - started
            if response.status != 200:
                raise SystemExit(f"unexpected status {response.status} on {path}")
            count[kind] += 1
    result.put((spent, count))


def measure(port: int, token: str, seconds: float, clients: int) -> dict[str, float]:
    """Requests per second of each kind: with a closed loop, clients / mean latency."""
    result = multiprocessing.Queue()
    procs = [
        multiprocessing.Process(target=client_loop, args=(port, token, seconds, result))
        for _ in range(clients)
    ]
    for proc in procs:
        proc.start()
    totals = [result.get() for _ in procs]
    for proc in procs:
        proc.join()
    rates = {}
    for kind in ("protected", "open"):
        spent = sum(t[0][kind] for t in totals)
        count = sum(t[1][kind] for t in totals)
        rates[kind] = clients * count / spent
    return rates


def start_gunicorn(app: str, port: int, env: dict, workers: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-b",
            f"127.0.0.1:{port}",
            "-w",
            str(workers),
            "--log-level",
            "warning",
            app,
        ],
        env=env,
        cwd=ROOT,
    )
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"gunicorn {app} did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=2)
    args = parser.parse_args()

    key = ECKey.generate_key("P-384", parameters={"alg": "ES384", "use": "sig"}, auto_kid=True)
    jwks = CountingJwks(key)
    issuer = "http://127.0.0.1:3001/oidc"
    now = int(time.time())
    token = jwt.encode(
        {"alg": "ES384", "typ": "at+jwt", "kid": key.kid},
        {
            "jti": "bench",
            "sub": "bench-app",
            "iat": now,
            "exp": now + 3600,
            "scope": "read:products",
            "client_id": "bench-app",
            "iss": issuer,
            "aud": RESOURCE,
        },
        key,
        algorithms=["ES384"],
    )

    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{tmp}/bench.sqlite",
            "LOGTO_ISSUER": issuer,
            "LOGTO_JWKS_URI": jwks.url,
            "SHOPPING_API_RESOURCE": RESOURCE,
            "PYTHONPATH": str(ROOT),
        }
        subprocess.run(
            [sys.executable, "-m", "flask", "--app", "shopping_api", "init-db"],
            env=env,
            cwd=tmp,
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [
                sys.executable,
                "-m",
                "flask",
                "--app",
                "shopping_api",
                "seed",
                "--products",
                "50",
                "--orders",
                "0",
            ],
            env=env,
            cwd=tmp,
            check=True,
            capture_output=True,
        )
        port = free_port()
        proc = start_gunicorn("bench.auth_overhead:create_bench_app()", port, env, args.workers)
        try:
            measure(port, token, 1.0, args.clients)  # warm-up: each worker fetches the keys once
            warm_fetches = jwks.fetches
            rounds = [measure(port, token, args.seconds, args.clients) for _ in range(args.rounds)]
        finally:
            proc.terminate()
            proc.wait()

    ratios = [r["protected"] / r["open"] for r in rounds]
    protected = statistics.median(r["protected"] for r in rounds)
    open_ = statistics.median(r["open"] for r in rounds)
    print(
        f"gunicorn workers: {args.workers}, client processes: {args.clients}, {args.rounds} rounds of "
        f"{args.seconds:g} s, each client alternating the two routes; medians shown"
    )
    print(
        f"GET /products with token check : {protected:8.0f} req/s  {[round(r['protected']) for r in rounds]}"
    )
    print(f"GET /products without the check: {open_:8.0f} req/s  {[round(r['open']) for r in rounds]}")
    print(
        f"protected / unprotected        : {statistics.median(ratios):8.2f}  "
        f"{[round(r, 2) for r in ratios]}  (target >= 0.90)"
    )
    print(f"JWKS fetches during warm-up    : {warm_fetches:8d}  (one per gunicorn worker)")
    print(f"JWKS fetches after warm-up     : {jwks.fetches - warm_fetches:8d}  (target 0)")


if __name__ == "__main__":
    main()
