"""Stats worker throughput: one day of 1,000,000 orders, end to end over real HTTP.

Seeds the orders into SQLite, serves them with gunicorn behind the local issuer's tokens, runs
``stats-worker once`` for that day and prints:

- orders per second and wall time of the worker process (start to exit);
- its peak RSS (``wait4`` rusage of that one process);
- its CPU time per 1,000 orders;
- token requests it made (counted in the issuer's access log);
- the ratio of its wall time to the plain download of the same pages: one token, then each page
  fetched as bytes, cursor after cursor, nothing parsed (the floor: pages come one after another).

Plain download and worker run alternately ``--rounds`` times and the best of each is compared, since
a shared machine's load changes from one minute to the next; the per-round ratios show the spread.

Targets: whole day < 60 s, peak RSS <= 150 MB, exactly 1 token request, ratio <= 1.25.

    .venv/bin/python bench/worker_throughput.py [--orders 1000000] [--customers 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

BIN = Path(sys.executable).parent
APP_ID, SECRET = "m2m-stats-worker", "stats-worker-local-secret"
RESOURCE, SCOPES = "https://shopping.api", "read:orders read:products"
RATIO_TARGET = 1.25
SETTING_PREFIXES = ("LOGTO_", "SHOPPING_", "STATS_", "TOKEN_", "JWKS_", "LOCAL_ISSUER_")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def env(**settings: str) -> dict[str, str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(SETTING_PREFIXES) and k not in ("DATABASE_URL", "REPORTS_DIR")
    }
    return {**base, **settings}


def wait_ready(url: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"{process.args[0]} exited with {process.returncode}")
        try:
            if requests.get(url, timeout=1).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    sys.exit(f"{url} not ready after {timeout} s")


#: The API writes ``next_cursor`` last, so the plain download can find it without parsing the page.
NEXT_CURSOR = re.compile(rb'"next_cursor":\s*(?:null|"([^"]*)")\s*}\s*$')


def bare_loop(api: str, issuer: str, day: str, page_size: int) -> tuple[float, float, int]:
    """Download every page of the day with one token and nothing else: the floor for the worker.

    Bytes only, cursor after cursor: each page's ``next_cursor`` is picked from its tail, nothing
    is parsed. Returns (wall seconds, CPU seconds of this loop, pages).
    """
    started, cpu = time.perf_counter(), time.process_time()
    token = requests.post(
        f"{issuer}/oidc/token",
        auth=(APP_ID, SECRET),
        timeout=30,
        data={"grant_type": "client_credentials", "resource": RESOURCE, "scope": SCOPES},
    ).json()["access_token"]
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    params: dict[str, str | int] = {"date": day, "tz": "UTC", "limit": page_size}
    pages = 0
    while True:
        response = session.get(f"{api}/orders", params=params, timeout=60)
        response.raise_for_status()
        pages += 1
        found = NEXT_CURSOR.search(response.content[-1024:])
        if found is None:
            sys.exit("the page does not end with next_cursor; has the API's serializer changed?")
        if found[1] is None:
            return time.perf_counter() - started, time.process_time() - cpu, pages
        params["cursor"] = found[1].decode()


def run_worker(worker_env: dict[str, str], day: str) -> tuple[float, float, int, int]:
    """Run ``stats-worker once``; return (wall seconds, CPU seconds, peak RSS in KiB, exit code)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [str(BIN / "stats-worker"), "once", "--date", day],
        env=worker_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    output = process.stdout.read()
    _pid, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    sys.stdout.write(output.decode(errors="replace"))
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, process.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--products", type=int, default=500)
    parser.add_argument("--api-workers", type=int, default=2)
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="plain download and worker runs, alternated; the best of each is compared "
        "(the machine may be shared)",
    )
    args = parser.parse_args()
    day = "2026-11-20"

    with tempfile.TemporaryDirectory(prefix="worker-bench-") as tmp:
        root = Path(tmp)
        issuer_port, api_port = free_port(), free_port()
        issuer, api = f"http://127.0.0.1:{issuer_port}", f"http://127.0.0.1:{api_port}"
        api_env = env(DATABASE_URL=f"sqlite:///{root / 'shop.sqlite'}", LOGTO_ENDPOINT=issuer)

        print(f"seeding {args.orders:,} orders on {day} ({args.customers:,} customers)...", flush=True)
        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "flask",
                "--app",
                "shopping_api",
                "seed",
                "--orders",
                str(args.orders),
                "--date",
                day,
                "--customers",
                str(args.customers),
                "--products",
                str(args.products),
            ],
            env=api_env,
            check=True,
        )
        print(f"seeded in {time.perf_counter() - started:.1f} s", flush=True)

        issuer_log = root / "issuer.log"
        with open(issuer_log, "wb") as log:
            issuer_proc = subprocess.Popen(
                [str(BIN / "local-issuer"), "--port", str(issuer_port), "--state-dir", str(root / "issuer")],
                env=env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        api_log = root / "api.log"
        with open(api_log, "wb") as log:
            api_proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "--bind",
                    f"127.0.0.1:{api_port}",
                    "--workers",
                    str(args.api_workers),
                    "--timeout",
                    "120",
                    "shopping_api:create_app()",
                ],
                env=api_env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_ready(f"{issuer}/oidc/.well-known/openid-configuration", issuer_proc)
            wait_ready(f"{api}/healthz", api_proc)

            worker_env = env(
                LOGTO_ENDPOINT=issuer,
                LOGTO_APP_ID=APP_ID,
                LOGTO_APP_SECRET=SECRET,
                SHOPPING_API_URL=api,
                REPORTS_DIR=str(root / "reports"),
                STATS_PAGE_SIZE=str(args.page_size),
            )
            bares, workers, reports = [], [], []
            for round_ in range(1, args.rounds + 1):  # alternated, so both see the same machine
                bare_seconds, bare_cpu, bare_pages = bare_loop(api, issuer, day, args.page_size)
                bares.append((bare_seconds, bare_cpu, bare_pages))
                print(f"round {round_}: download {bare_pages:,} pages in {bare_seconds:.1f} s", flush=True)
                tokens_before = issuer_log.read_text().count('"POST /oidc/token"')
                wall, cpu, peak_kib, code = run_worker(worker_env, day)
                time.sleep(0.5)  # let the issuer flush its access log
                token_requests = issuer_log.read_text().count('"POST /oidc/token"') - tokens_before
                if code != 0:
                    print(f"stats-worker exited with {code}")
                    return 1
                workers.append((wall, cpu, peak_kib, token_requests))
                reports.append(json.loads((root / "reports" / f"{day}.json").read_text()))
                print(f"round {round_}: worker {wall:.1f} s, ratio {wall / bare_seconds:.2f}", flush=True)
        except BaseException:
            print(f"--- shopping API log:\n{api_log.read_text()[-3000:]}", file=sys.stderr)
            raise
        finally:
            for process in (api_proc, issuer_proc):
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGTERM)
                    process.wait(30)

    orders = reports[0]["orders"]
    best_bare = min(bares)
    best_worker = min(workers)
    wall, cpu = best_worker[0], best_worker[1]
    peak_kib = max(w[2] for w in workers)
    tokens = [w[3] for w in workers]
    ratio = wall / best_bare[0]
    ratios = [worker[0] / bare[0] for worker, bare in zip(workers, bares, strict=True)]
    print()
    print(f"machine                {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end")
    print(f"rounds                 {args.rounds} (best of each below)")
    print(f"orders reported        {orders:,} ({reports[0]['customers']:,} customers)")
    print(f"worker wall time       {wall:.1f} s   (target < 60 s; all: {_seconds(w[0] for w in workers)})")
    print(f"orders per second      {orders / wall:,.0f}")
    print(f"worker CPU time        {cpu:.1f} s = {cpu / orders * 1e6:.1f} ms per 1,000 orders")
    print(f"worker peak RSS        {peak_kib / 1024:.0f} MB   (target <= 150 MB; highest of all rounds)")
    print(f"token requests         {', '.join(map(str, tokens))}   (target 1 per run)")
    print(f"plain download         {best_bare[0]:.1f} s   (all: {_seconds(b[0] for b in bares)})")
    print(
        f"worker / download      {ratio:.2f}   (target <= {RATIO_TARGET}; per round: "
        f"{', '.join(f'{r:.2f}' for r in ratios)})"
    )
    identical = all(report == reports[0] for report in reports)
    ok = (
        wall < 60
        and peak_kib <= 150 * 1024
        and set(tokens) == {1}
        and ratio <= RATIO_TARGET
        and orders == args.orders
        and identical
    )
    print("all targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


def _seconds(values) -> str:
    return ", ".join(f"{value:.1f}" for value in values)


if __name__ == "__main__":
    sys.exit(main())
