"""What does the token check cost? Server CPU time per request of GET /products?limit=20 with a
valid token, against the same view served without the check, side by side in one run.

    .venv/bin/python bench/auth_overhead.py [--requests 2000] [--rounds 7] [--workers 2] [--clients 2]

Five kinds of request for the same view, in one app: open (no check); behind a bare ES384
signature check (base64 and DER decoding plus ``cryptography``'s ECDSA verify and nothing else:
the least any check of a new token must do); behind the least a joserfc-based check does
(``jwt.decode``, ``iss``/``aud``/``exp`` and the scope: what a check that keeps the JOSE work in
the library costs at the least); behind the real token check with one token reused for every
request (hot: an M2M client reuses its token for an hour); and behind the real check with a new
token on every request. Figures, each printed with its target where it has one:

- hot: extra server CPU per request over the open route, <= 40 us;
- new token: extra server CPU per request over the bare ES384 check, <= 40 us (and, beside it,
  the minimal joserfc check over the bare one, and the real check over the minimal one);
- both under gunicorn (sync workers) and in process (the WSGI app called directly).

The targets are microseconds of the machine they were set on, where an ES384 verify took 347 us.
The output prints this machine's tight-loop verify as a multiple of that, and each target scaled
by it (the same share of this machine's time) beside the target as written.

How it measures, under gunicorn. Each client sends the kinds in turn, in a shuffled order
each cycle, so load, drift and neighbours hit them alike, and a request is never measured against
one that ran minutes apart. Inside each worker, a bench-only WSGI wrapper reads the worker's own
CPU clock (``time.thread_time_ns``) around each request and keeps the figure by kind; the
benchmark collects them after each round and takes, per kind, the median request (so a request
that an interrupt or a garbage collection inflated does not move the figure). Beside it: the
workers' whole CPU time in the round, read from each worker's process CPU clock, divided by the
requests (it adds what gunicorn itself spends per request, and shows the wrapper misses nothing
large), requests per second, and the client's CPU time per request.

In process, the app is called as WSGI in the same shuffled turns, timed with the process CPU
clock, medians per kind; the ES384 verify alone in a tight loop is printed for reference (it is
cheaper there than inside a request: a request evicts the verify's data from the CPU caches and
the verify evicts the request's, which is why the bare-check route is the fair baseline).

So that the load generator does not steal the server's CPU unnoticed, gunicorn (master and
workers) is pinned to one core and the client processes to another (``os.sched_setaffinity``;
with fewer than two cores nothing is pinned and the output says so), and the client's own CPU
time per request is printed. Other programs on the machine still share the cores: the per-round
figures show how much they moved the medians.

The extra routes and the wrapper are built here, for the benchmark only (``create_bench_app``);
no setting of the real app can switch authentication off. A counting JWKS server stands in for
Logto, so the run also reports JWKS fetches after start-up (target 0).
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import multiprocessing
import os
import random
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


#: The ES384 verify, in microseconds, on the machine where the targets were set: this machine's own
#: tight-loop figure over it says how much slower or faster this machine is than that one.
TARGET_MACHINE_VERIFY_US = 347.0

KINDS = ("open", "bare", "joserfc", "hot", "new")
KIND_HEADER = "X-Bench-Kind"
LABELS = {
    "open": "open route (no check)",
    "bare": "bare ES384 verify in front",
    "joserfc": "minimal joserfc check in front",
    "hot": "token check, token reused",
    "new": "token check, new token each",
}


def create_bench_app() -> Any:
    """The real app plus three variants of ``GET /products`` and a CPU meter, for the benchmark only.

    ``/open/products``: the same view without ``require_oauth``. ``/bare/products``: the same view
    behind a bare ES384 signature check. ``/joserfc/products``: behind the least a joserfc-based
    check does (``jwt.decode``, then ``iss``, ``aud``, ``exp`` and the scope, no cache).
    ``/bench/cpu``: the CPU time of each request this worker served since the last call, by kind
    (then forgotten).
    """
    from flask import abort, request
    from joserfc.jwt import JWTClaimsRegistry

    from shopping_api import create_app

    app = create_app()
    endpoint = next(
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if rule.rule == "/products" and "GET" in (rule.methods or ())
    )
    view = getattr(app.view_functions[endpoint], "__wrapped__")  # noqa: B009 - the view under require_oauth
    jwk = ECKey.import_key(json.loads(os.environ["BENCH_PUBLIC_JWK"]))
    public = jwk.public_key
    claims = JWTClaimsRegistry(
        iss={"essential": True, "value": ISSUER},
        aud={"essential": True, "value": RESOURCE},
        exp={"essential": True},
    )

    def bare_products(**view_args: Any) -> Any:
        der, signing_input = signature_check(request.headers["Authorization"].removeprefix("Bearer "))
        public.verify(der, signing_input, ec.ECDSA(hashes.SHA384()))
        return view(**view_args)

    def joserfc_products(**view_args: Any) -> Any:
        raw = request.headers["Authorization"].removeprefix("Bearer ")
        token = jwt.decode(raw, jwk, algorithms=["ES384"])
        claims.validate(token.claims)
        if "read:products" not in token.claims.get("scope", "").split():
            abort(403)
        return view(**view_args)

    app.add_url_rule("/open/products", "open_products", view)
    app.add_url_rule("/bare/products", "bare_products", bare_products)
    app.add_url_rule("/joserfc/products", "joserfc_products", joserfc_products)
    app.wsgi_app = CpuMeter(app.wsgi_app)  # type: ignore[method-assign]
    return app


class CpuMeter:
    """WSGI wrapper: this worker's CPU time per request, by the kind the client names."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.samples: dict[str, list[int]] = {}

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if environ["PATH_INFO"] == "/bench/cpu":
            body = json.dumps({"pid": os.getpid(), "samples": self.samples}).encode()
            self.samples = {}
            start_response(
                "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            )
            return [body]
        started = time.thread_time_ns()
        body_parts = list(self.app(environ, start_response))  # the whole body: its cost counts too
        spent = time.thread_time_ns() - started
        self.samples.setdefault(environ.get("HTTP_X_BENCH_KIND", "other"), []).append(spent)
        return body_parts


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


def signature_check(token: str) -> tuple[bytes, bytes]:
    """What a bare ES384 check verifies: the DER signature and the signing input of ``token``."""
    header, payload, signature = token.split(".")
    raw = base64.urlsafe_b64decode(signature + "==")
    der = encode_dss_signature(int.from_bytes(raw[:48], "big"), int.from_bytes(raw[48:], "big"))
    return der, f"{header}.{payload}".encode()


def requests_of(kind: str, hot: str, fresh: list[str]) -> list[tuple[str, dict[str, str]]]:
    """(path, headers) of each request of ``kind``; ``fresh`` holds one new token per request."""
    tag = {KIND_HEADER: kind}
    if kind == "open":
        return [("/open" + PATH, tag)] * len(fresh)
    if kind == "hot":
        return [(PATH, {**tag, "Authorization": f"Bearer {hot}"})] * len(fresh)
    path = {"bare": "/bare", "joserfc": "/joserfc"}.get(kind, "") + PATH
    return [(path, {**tag, "Authorization": f"Bearer {token}"}) for token in fresh]


def shuffled_turns(count: int, seed: int) -> list[list[str]]:
    """``count`` cycles over the kinds, each in its own random order."""
    rng = random.Random(seed)
    return [rng.sample(KINDS, len(KINDS)) for _ in range(count)]


# -- CPU clocks of the gunicorn workers ---------------------------------------------------------


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) of another process, with nanosecond resolution.

    The clock id is what clock_getcpuclockid(3) returns for ``pid`` on Linux; /proc/<pid>/stat
    would do too, in 10 ms ticks.
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


def collect_samples(port: int, workers: list[int]) -> dict[str, list[int]]:
    """Ask /bench/cpu until every worker has handed over its samples; merge them by kind."""
    merged: dict[str, list[int]] = {}
    seen: set[int] = set()
    for _ in range(200 * len(workers)):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/bench/cpu")
        answer = json.loads(conn.getresponse().read())
        if answer["pid"] not in seen:
            seen.add(answer["pid"])
            for kind, values in answer["samples"].items():
                merged.setdefault(kind, []).extend(values)
        if seen >= set(workers):
            return merged
    raise SystemExit("could not reach every gunicorn worker")


# -- the load: closed-loop client processes, pinned away from the server ----------------------


def client_loop(
    port: int, plan: list[tuple[str, dict[str, str]]], core: int | None, start: Any, result: Any
) -> None:
    if core is not None:
        os.sched_setaffinity(0, {core})
    conn = http.client.HTTPConnection("127.0.0.1", port)
    start.wait()
    cpu, wall = time.process_time(), time.perf_counter()
    for path, headers in plan:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise SystemExit(f"unexpected status {response.status} on {path}")
    result.put((time.process_time() - cpu, time.perf_counter() - wall))


def run_round(
    port: int, workers: list[int], plans: list[list[tuple[str, dict[str, str]]]], core: int | None
) -> dict[str, Any]:
    """Send every planned request; the workers' CPU samples by kind, and the round's totals."""
    start = multiprocessing.Event()
    result: multiprocessing.Queue[tuple[float, float]] = multiprocessing.Queue()
    procs = [
        multiprocessing.Process(target=client_loop, args=(port, plan, core, start, result)) for plan in plans
    ]
    for proc in procs:
        proc.start()
    time.sleep(0.2)  # let the clients start before the clocks do
    collect_samples(port, workers)  # forget what came before
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
    requests = sum(len(plan) for plan in plans)
    samples = collect_samples(port, workers)
    return {
        "samples": {kind: statistics.median(samples[kind]) / 1e3 for kind in KINDS},
        "server": server / requests * 1e6,
        "measured": sum(sum(samples[kind]) for kind in KINDS) / 1e9 / server,
        "client": sum(o[0] for o in outcomes) / requests * 1e6,
        "rate": requests / wall,
    }


def load_plans(
    key: ECKey, hot: str, clients: int, cycles: int, seed: int
) -> list[list[tuple[str, dict[str, str]]]]:
    plans = []
    for client in range(clients):
        fresh = make_tokens(key, cycles)
        by_kind = {kind: requests_of(kind, hot, fresh) for kind in KINDS}
        turns = shuffled_turns(cycles, seed * 1000 + client)
        plans.append([by_kind[kind][cycle] for cycle, order in enumerate(turns) for kind in order])
    return plans


# -- in process: the same app, called as WSGI, no network --------------------------------------


def in_process(
    key: ECKey, jwks_url: str, database_url: str, cycles: int, rounds: int
) -> dict[str, list[float]]:
    """Median CPU microseconds per call of each kind and round, calling the WSGI app directly."""
    from werkzeug.test import EnvironBuilder

    os.environ.update(
        DATABASE_URL=database_url,
        LOGTO_ISSUER=ISSUER,
        LOGTO_JWKS_URI=jwks_url,
        SHOPPING_API_RESOURCE=RESOURCE,
        BENCH_PUBLIC_JWK=json.dumps(key.as_dict(private=False)),
    )
    app = create_bench_app()

    def environ(path: str, headers: dict[str, str]) -> dict[str, Any]:
        url, _, query = path.partition("?")
        return EnvironBuilder(path=url, query_string=query, headers=list(headers.items())).get_environ()

    def start_response(*_args: object) -> None:
        pass

    verifier = ECKey.import_key(key.as_dict(private=False)).public_key
    clock = time.process_time_ns
    medians: dict[str, list[float]] = {kind: [] for kind in (*KINDS, "verify")}
    hot = make_tokens(key, 1)[0]
    for _ in range(50):  # warm-up: imports, first queries, the hot token's cache entry
        for _chunk in app.wsgi_app(environ(PATH, {"Authorization": f"Bearer {hot}"}), start_response):
            pass
    for round_ in range(rounds):
        fresh = make_tokens(key, cycles)
        calls = {kind: [environ(p, h) for p, h in requests_of(kind, hot, fresh)] for kind in KINDS}
        spent: dict[str, list[int]] = {kind: [] for kind in KINDS}
        for cycle, order in enumerate(shuffled_turns(cycles, round_)):
            for kind in order:
                started = clock()
                for _chunk in app.wsgi_app(dict(calls[kind][cycle]), start_response):
                    pass
                spent[kind].append(clock() - started)
        for kind, values in spent.items():
            medians[kind].append(statistics.median(values) / 1e3)
        checks = [signature_check(token) for token in make_tokens(key, cycles)]
        started = clock()
        for der, signing_input in checks:
            verifier.verify(der, signing_input, ec.ECDSA(hashes.SHA384()))
        medians["verify"].append((clock() - started) / cycles / 1e3)
    return medians


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


def verdict(values: list[float], target: float) -> str:
    return "meets" if statistics.median(values) <= target else "MISSES"


def minus(a: list[float], b: list[float]) -> list[float]:
    return [x - y for x, y in zip(a, b, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per round, all kinds")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--inproc-cycles", type=int, default=300, help="calls per kind and round in process")
    args = parser.parse_args()

    cores = sorted(os.sched_getaffinity(0))
    server_core, client_core = (cores[0], cores[1]) if len(cores) >= 2 else (None, None)
    key = ECKey.generate_key("P-384", parameters={"alg": "ES384", "use": "sig"}, auto_kid=True)
    jwks = CountingJwks(key)
    hot = make_tokens(key, 1)[0]
    cycles = max(1, args.requests // (args.clients * len(KINDS)))

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
        before_start = jwks.fetches  # init-db and seed built the app too, and loaded the keys
        proc = start_gunicorn(port, env, args.workers, server_core)
        rounds = []
        try:
            workers = children(proc.pid)
            # Each worker loads the keys as it starts; a worker may still be starting after /healthz.
            wait_for(lambda: jwks.fetches >= before_start + args.workers)
            start_fetches = jwks.fetches
            run_round(port, workers, load_plans(key, hot, args.clients, 50, 0), client_core)  # warm-up
            for round_ in range(1, args.rounds + 1):
                plans = load_plans(key, hot, args.clients, cycles, round_)
                rounds.append(run_round(port, workers, plans, client_core))
            fetches_after_start = jwks.fetches - start_fetches
            replaced = sorted(children(proc.pid)) != sorted(workers)
        finally:
            proc.terminate()
            proc.wait()
        local = in_process(key, jwks.url, database_url, args.inproc_cycles, args.rounds)

    served = {kind: [r["samples"][kind] for r in rounds] for kind in KINDS}

    def extra(medians: dict[str, list[float]]) -> dict[str, list[float]]:
        return {
            "hot": minus(medians["hot"], medians["open"]),
            "bare": minus(medians["bare"], medians["open"]),
            "new": minus(medians["new"], medians["open"]),
            "new-bare": minus(medians["new"], medians["bare"]),
            "joserfc-bare": minus(medians["joserfc"], medians["bare"]),
            "new-joserfc": minus(medians["new"], medians["joserfc"]),
        }

    extras = {"gunicorn": extra(served), "in process": extra(local)}
    # The targets are microseconds on the machine where they were set; on a slower or faster machine
    # the same code takes more or fewer of them. The ES384 verify alone (native code, one run) says
    # by how much, and the scaled target is the same share of this machine's time.
    speed = statistics.median(local["verify"]) / TARGET_MACHINE_VERIFY_US
    pinning = (
        f"gunicorn pinned to core {server_core}, clients to core {client_core}"
        if server_core is not None
        else "fewer than two cores: nothing pinned, client and server share the CPU"
    )
    print(
        f"GET {PATH}: gunicorn -w {args.workers} (sync), {args.clients} client processes, "
        f"{args.rounds} rounds of {cycles * args.clients * len(KINDS)} requests, "
        f"the {len(KINDS)} kinds in shuffled turns; {pinning}"
    )
    print("CPU in microseconds per request: median over rounds, then each round")
    print()
    print("under gunicorn: each worker's CPU clock around each request (median request of the round)")
    for kind in KINDS:
        print(f"  {LABELS[kind]:32s} {spread(served[kind])}")
    print(
        f"  {'all kinds, whole workers':32s} {spread([r['server'] for r in rounds])}"
        "  (process CPU clocks / requests)"
    )
    print(
        "  share of the workers' CPU inside the timed requests: "
        f"{statistics.median(r['measured'] for r in rounds):.0%};"
        f" {statistics.median(r['rate'] for r in rounds):.0f} req/s;"
        f" client CPU {statistics.median(r['client'] for r in rounds):.0f} us/request"
    )
    print()
    print("in process: the WSGI app called directly (median call of the round)")
    for kind in KINDS:
        print(f"  {LABELS[kind]:32s} {spread(local[kind])}")
    print(f"  {'ES384 verify alone, tight loop':32s} {spread(local['verify'])}")
    print()
    print("extra CPU per request")
    for where, figures in extras.items():
        print(f"  {where}")
        rows = (
            ("token reused (hot), over open", figures["hot"], True),
            ("bare ES384 verify, over open", figures["bare"], False),
            ("new token each request, over open", figures["new"], False),
            ("new token each request, over bare ES384", figures["new-bare"], True),
            ("minimal joserfc check, over bare ES384", figures["joserfc-bare"], False),
            ("new token each request, over joserfc", figures["new-joserfc"], False),
        )
        for label, values, has_target in rows:
            goal = f"target <= {TARGET_US:.0f}: {verdict(values, TARGET_US)}" if has_target else ""
            if has_target and abs(speed - 1) > 0.1:
                goal += f"; scaled <= {TARGET_US * speed:.0f}: {verdict(values, TARGET_US * speed)}"
            print(f"    {label:40s} {spread(values):44s} {goal}")
    print()
    print(
        f"this machine: ES384 verify alone {statistics.median(local['verify']):.0f} us, "
        f"{speed:.2f} x the {TARGET_MACHINE_VERIFY_US:.0f} us of the machine the targets were set on; "
        "a scaled target is the same share of this machine's time"
    )
    print()
    print(f"JWKS fetches after start-up: {fetches_after_start} (target 0: workers load keys as they start)")
    if replaced:
        print("warning: a gunicorn worker was replaced during the run")


if __name__ == "__main__":
    main()
