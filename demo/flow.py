"""The quick start, step by step: each step does the real thing and narrates it."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import re
import shutil
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from dotenv import dotenv_values

from local_issuer.config import bootstrap_config_path
from logto_m2m.http import make_session
from logto_m2m.logto import MANAGEMENT_API_SCOPE, OSS_MANAGEMENT_API_RESOURCE, issuer_for
from stats_worker.report import format_money as money
from stats_worker.token_client import BearerAuth, TokenClient

from .api_side import app_log_lines, check_rows, failed_check
from .narration import Narrator, shorten_token
from .services import Service, Services, free_port, run_program

RESOURCE = "https://shopping.api"
#: The tenant the local issuer starts with: what a fresh Logto holds after the one console step
#: (Logto's Management API, its access role, the bootstrap app). Public, local-only credentials.
BOOTSTRAP_TENANT = bootstrap_config_path()
BOOTSTRAP_APP = ("m2m-bootstrap-admin", "bootstrap-admin-local-secret")
#: Where `logto-m2m provision` writes the credentials Logto assigns to the apps of the tenant file
#: (local_issuer/default.yaml names the variables with `env:`).
CREDENTIALS = "credentials.env"
ADMIN_ENV = ("SHOPPING_ADMIN_APP_ID", "SHOPPING_ADMIN_APP_SECRET")
WORKER_ENV = ("LOGTO_APP_ID", "LOGTO_APP_SECRET")
ADMIN_SCOPES = "read:products write:products write:orders"
WORKER_SCOPES = "read:orders read:products"
#: The customers: users of the tenant file, created by provisioning; Logto assigns their ids.
CUSTOMER_USERNAMES = ("alice", "bob", "carol", "dave")
#: A Management API request line in the local issuer's access log: `127.0.0.1 "POST /api/roles" 200 ...`.
#: A Logto-assigned id in a logged path (ids carry digits; route words such as "custom-data" do not).
ID_SEGMENT = re.compile(r"/(?=[A-Za-z0-9_-]*\d)[A-Za-z0-9_-]{10,}")
MANAGEMENT_REQUEST = re.compile(r'"(GET|POST|PATCH|PUT|DELETE) (/api/\S*)" (\d{3})')
ORDERS = 12
#: (sku, name, price in minor units, currency): a catalog in two currencies.
CATALOG = (
    ("MUG-001", "Logto mug", 1299, "USD"),
    ("TEE-001", "M2M T-shirt", 2499, "USD"),
    ("STICKER-001", "Sticker pack", 499, "USD"),
    ("BEANS-001", "Espresso beans 1 kg", 2190, "EUR"),
    ("NOTE-001", "Dotted notebook", 950, "EUR"),
    ("TOTE-001", "Tote bag", 1500, "EUR"),
)
#: Program output is shown indented under the step; only this many lines of it.
MAX_PROGRAM_LINES = 30
#: The timestamp at the start of a log line: dropped on screen to keep lines short.
LOG_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ")
#: Names under the work directory that a run creates, and the next run removes first.
RUN_FILES = ("shop.sqlite", "shop.sqlite-wal", "shop.sqlite-shm", "reports", "issuer", "logs", CREDENTIALS)
#: Marks a directory as the demo's own, so a later run may empty it (and nothing else).
MARKER = ".demo-workdir"
#: The API's serving settings (logging with request ids included), as in production.
GUNICORN_CONF = Path(__file__).resolve().parent.parent / "gunicorn.conf.py"


@dataclass
class DemoOptions:
    workdir: Path
    issuer_port: int = 0  # 0: pick a free one
    api_port: int = 0
    api_workers: int = 2


def bin_path(name: str) -> str:
    """A console script of the environment the demo runs in (the project's .venv)."""
    return str(Path(sys.executable).parent / name)


def child_env(**settings: str) -> dict[str, str]:
    """The caller's environment without this project's settings, plus ``settings``.

    A LOGTO_ENDPOINT left in the shell must not point the demo at another server.
    """
    prefixes = ("LOGTO_", "SHOPPING_", "STATS_", "TOKEN_", "JWKS_", "LOCAL_ISSUER_")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(prefixes) and k not in ("DATABASE_URL", "REPORTS_DIR")
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(settings)
    return env


class Demo:
    def __init__(self, options: DemoOptions, narrator: Narrator | None = None) -> None:
        self.options = options
        self.say = narrator or Narrator()
        self.workdir = options.workdir.resolve()
        self.issuer_port = options.issuer_port or free_port()
        self.api_port = options.api_port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.issuer_port}"
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.database = self.workdir / "shop.sqlite"
        self.reports = self.workdir / "reports"
        self.logs = self.workdir / "logs"
        self.http = make_session(retries=0)
        # Every HTTP exchange the demo wants to show goes through this hook.
        self.show_next = False
        self.http.hooks["response"].append(self._narrate_exchange)
        # Set by provisioning: the apps' credentials as Logto assigned them, the customers' user ids.
        self.admin_app: tuple[str, str] = ("", "")
        self.worker_app: tuple[str, str] = ("", "")
        self.customers: list[str] = []

    # -- plumbing --------------------------------------------------------------------------

    def _narrate_exchange(self, response: requests.Response, **kwargs: Any) -> None:
        if self.show_next:
            self.show_next = False
            self.say.exchange(response)

    def prepare_workdir(self) -> None:
        if self.workdir.is_dir() and any(self.workdir.iterdir()) and not (self.workdir / MARKER).exists():
            raise ValueError(
                f"{self.workdir} is not empty and was not made by the demo; choose another --workdir"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / MARKER).write_text("made by make demo; emptied by each run\n", encoding="utf-8")
        (self.workdir / ".gitignore").write_text("*\n", encoding="utf-8")  # keep runs out of git
        for name in RUN_FILES:
            path = self.workdir / name
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        for path in (self.reports, self.logs):
            path.mkdir()

    def api_env(self) -> dict[str, str]:
        return child_env(
            LOGTO_ENDPOINT=self.endpoint,
            SHOPPING_API_RESOURCE=RESOURCE,
            DATABASE_URL=f"sqlite:///{self.database}",
            LOG_FORMAT="text",  # the demo reads the API's log lines back (api_side.py)
            LOG_LEVEL="info",
        )

    def worker_env(self) -> dict[str, str]:
        app_id, secret = self.worker_app
        return child_env(
            LOGTO_ENDPOINT=self.endpoint,
            LOGTO_APP_ID=app_id,
            LOGTO_APP_SECRET=secret,
            SHOPPING_API_RESOURCE=RESOURCE,
            SHOPPING_API_URL=self.api_url,
            STATS_SCOPES=WORKER_SCOPES,
            STATS_TIMEZONE="UTC",
            REPORTS_DIR=str(self.reports),
            LOGTO_MANAGEMENT_API_RESOURCE=OSS_MANAGEMENT_API_RESOURCE,
        )

    def token_client(self, app: tuple[str, str]) -> TokenClient:
        return TokenClient(issuer_for(self.endpoint) + "/token", *app, session=self.http)

    def show_output(self, text: str) -> None:
        lines = [LOG_TIMESTAMP.sub("", line) for line in text.splitlines() if line.strip()]
        for line in lines[:MAX_PROGRAM_LINES]:
            self.say.output(line)
        if len(lines) > MAX_PROGRAM_LINES:
            self.say.output(f"... ({len(lines) - MAX_PROGRAM_LINES} more lines)")

    # -- the steps -------------------------------------------------------------------------

    def run(self) -> None:
        self.prepare_workdir()
        with Services() as services:
            self.start_issuer(services)
            self.provision()
            self.start_api(services)
            self.admin_token()
            self.call_api()
            products = self.create_catalog()
            day, orders = self.place_orders(products)
            self.run_worker(day)
            self.read_custom_data(orders)
            self.check_report(day, orders)
            self.say.step("Stop everything the demo started", "demo/services.py")
            for name, status in services.stop_all().items():
                self.say.table([(name, f"stopped (exit status {status})")])
        self.say.line()
        self.say.line("Done. Files of this run are in " + self.relative(self.workdir) + ".", indent=0)

    def relative(self, path: Path) -> str:
        try:
            return str(path.relative_to(Path.cwd()))
        except ValueError:
            return str(path)

    def start_issuer(self, services: Services) -> None:
        self.say.step(
            "Start the local issuer as a fresh Logto tenant",
            "local_issuer/cli.py, local_issuer/bootstrap.yaml",
        )
        self.say.say(
            "The local issuer stands in for Logto: same endpoints, same token shape, same "
            "Management API (local development only). It starts as a real tenant does after the "
            "one Admin Console step: Logto's Management API, its access role, and one "
            "machine-to-machine app holding that role (the bootstrap app)."
        )
        issuer_dir = self.workdir / "issuer"
        issuer_dir.mkdir()
        services.start(
            Service(
                "local issuer",
                [
                    bin_path("local-issuer"),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.issuer_port),
                    "--state-dir",
                    str(issuer_dir),
                    "--config",
                    str(BOOTSTRAP_TENANT),
                ],
                env=child_env(),
                cwd=self.workdir,
                log_path=self.logs / "local-issuer.log",
                ready_url=issuer_for(self.endpoint) + "/.well-known/openid-configuration",
                port=self.issuer_port,
                port_option="--issuer-port" if self.options.issuer_port else None,
            )
        )
        discovery = self.http.get(issuer_for(self.endpoint) + "/.well-known/openid-configuration").json()
        self.say.line()
        self.say.line(f"local issuer   {self.endpoint}")
        self.say.table(
            [
                ("issuer", discovery.get("issuer")),
                ("token_endpoint", discovery.get("token_endpoint")),
                ("jwks_uri", discovery.get("jwks_uri")),
            ],
            indent=2,
        )

    def provision(self) -> None:
        self.say.step(
            "Provision the tenant from one file (logto-m2m provision)",
            "logto_m2m/provision/, local_issuer/management/",
        )
        self.say.say(
            "As the bootstrap app, `logto-m2m provision` creates what local_issuer/default.yaml "
            "describes through Logto's Management API: the API resource and its permissions, the "
            "machine-to-machine roles, the apps, the users. It writes each app's App ID and secret "
            f"to {CREDENTIALS} (mode 0600) and prints no secret. Run it twice: the second run "
            "changes nothing."
        )
        self.say.line()
        credentials = self.workdir / CREDENTIALS
        log = self.logs / "local-issuer.log"
        seen = log.stat().st_size if log.exists() else 0
        app_id, secret = BOOTSTRAP_APP
        argv = [bin_path("logto-m2m"), "provision", "--env-file", CREDENTIALS, "--with-users"]
        self.say.line(f"$ logto-m2m provision --env-file {CREDENTIALS} --with-users", indent=2)
        env = child_env(
            LOGTO_ENDPOINT=self.endpoint, LOGTO_ADMIN_APP_ID=app_id, LOGTO_ADMIN_APP_SECRET=secret
        )
        result = run_program(argv, env=env, cwd=self.workdir)
        self.show_output(result.stdout)
        if result.returncode != 0:
            raise RuntimeError(f"logto-m2m provision exited with status {result.returncode}")
        self.say.line()
        self.say.say("The Management API requests it sent, as the issuer logged them:")
        self.say.line()
        requests_sent = Counter(
            (method, ID_SEGMENT.sub("/{id}", path), status)
            for method, path, status in MANAGEMENT_REQUEST.findall(self._log_since(log, seen))
        )
        self.say.table(
            [
                (f"{method} {path}", f"-> {status}" + (f" (x{count})" if count > 1 else ""))
                for (method, path, status), count in requests_sent.items()
            ]
        )
        self.say.line()
        self.say.line(f"$ logto-m2m provision --env-file {CREDENTIALS} --with-users   # again", indent=2)
        again = run_program(argv, env=env, cwd=self.workdir)
        self.show_output("\n".join(again.stdout.splitlines()[-2:]))
        if again.returncode != 0:
            raise RuntimeError(f"logto-m2m provision exited with status {again.returncode} on its second run")
        values = dotenv_values(credentials)
        self.admin_app = (str(values.get(ADMIN_ENV[0]) or ""), str(values.get(ADMIN_ENV[1]) or ""))
        self.worker_app = (str(values.get(WORKER_ENV[0]) or ""), str(values.get(WORKER_ENV[1]) or ""))
        if not all(self.admin_app + self.worker_app):
            raise RuntimeError(f"{CREDENTIALS} lacks the apps' credentials after provisioning")
        # One token client per app, as in a real M2M app: tokens are cached and reused.
        self.admin = self.token_client(self.admin_app)
        self.admin_auth = BearerAuth(self.admin, RESOURCE, ADMIN_SCOPES)
        self.customers = self.customer_ids()
        self.say.line()
        self.say.line(f"{CREDENTIALS} (values not shown):")
        self.say.table(
            [
                ("Stats worker", f"{WORKER_ENV[0]}={self.worker_app[0]}, {WORKER_ENV[1]}=<secret>"),
                ("Shopping admin", f"{ADMIN_ENV[0]}={self.admin_app[0]}, {ADMIN_ENV[1]}=<secret>"),
            ]
        )

    def _log_since(self, log: Path, offset: int) -> str:
        with open(log, encoding="utf-8", errors="replace") as text:
            text.seek(offset)
            return text.read()

    def customer_ids(self) -> list[str]:
        """The provisioned users' ids, read through the Management API as the bootstrap app."""
        bootstrap = self.token_client(BOOTSTRAP_APP)
        token = bootstrap.get_token(OSS_MANAGEMENT_API_RESOURCE, MANAGEMENT_API_SCOPE)
        response = self.http.get(
            f"{self.endpoint}/api/users",
            params={"page": 1, "page_size": 100},
            headers={"Authorization": f"Bearer {token}"},
        )
        response.raise_for_status()
        by_username = {user.get("username"): user["id"] for user in response.json()}
        missing = [name for name in CUSTOMER_USERNAMES if name not in by_username]
        if missing:
            raise RuntimeError(f"provisioning did not create the users {', '.join(missing)}")
        return [by_username[name] for name in CUSTOMER_USERNAMES]

    def start_api(self, services: Services) -> None:
        self.say.step(
            "Start the shopping API", "gunicorn.conf.py, shopping_api/__init__.py, shopping_api/jwks.py"
        )
        self.say.say(
            "Served by gunicorn, data in SQLite; it trusts tokens the issuer signs for its resource."
        )
        init = run_program(
            [sys.executable, "-m", "flask", "--app", "shopping_api", "init-db"],
            env=self.api_env(),
            cwd=self.workdir,
        )
        if init.returncode != 0:
            raise RuntimeError(f"flask init-db failed:\n{init.stdout}")
        services.start(
            Service(
                "shopping API",
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "--bind",
                    f"127.0.0.1:{self.api_port}",
                    "--workers",
                    str(self.options.api_workers),
                    "--graceful-timeout",
                    "5",
                    *(["--config", str(GUNICORN_CONF)] if GUNICORN_CONF.is_file() else []),
                    # gunicorn's control socket has one path per user (~/.gunicorn/gunicorn.ctl): each
                    # new server takes it over from the last, and the first to stop deletes it.
                    "--no-control-socket",
                    "shopping_api:create_app()",
                ],
                env=self.api_env(),
                cwd=self.workdir,
                log_path=self.logs / "shopping-api.log",
                ready_url=self.api_url + "/healthz",
                port=self.api_port,
                port_option="--api-port" if self.options.api_port else None,
            )
        )
        self.say.line(f"shopping API   {self.api_url}  (gunicorn, {self.options.api_workers} workers)")
        self.say.table(
            [
                ("resource", RESOURCE),
                ("database", self.relative(self.database)),
                ("logs", self.relative(self.logs)),
            ],
            indent=2,
        )
        self.show_key_fetch()

    def show_key_fetch(self) -> None:
        """The API's side of start-up: each worker fetched the issuer's signing keys."""
        self.say.line()
        self.say.say(
            "The API's side (shopping_api/jwks.py): as each gunicorn worker started, it fetched the "
            "issuer's signing keys, the JWKS, once; it checks every token's signature with them and "
            "fetches again only when they expire or a token names a key it does not have. Its log:"
        )
        self.say.line()
        fetches = [line.message for line in app_log_lines(self.logs / "shopping-api.log")]
        for message in [m for m in fetches if m.startswith("JWKS ")][: self.options.api_workers]:
            self.say.output(f"INFO shopping_api.jwks: {message}")
        discovery = self.http.get(issuer_for(self.endpoint) + "/.well-known/openid-configuration").json()
        jwks_uri = discovery["jwks_uri"]
        keys = self.http.get(jwks_uri).json()["keys"]
        self.say.line()
        self.say.table(
            [
                ("JWKS", f"{jwks_uri} (the discovery document's jwks_uri)"),
                *[("key", f"kid {key['kid']} ({key.get('alg', key['kty'])})") for key in keys],
            ],
            indent=2,
        )

    def show_api_checks(self, response: requests.Response, token: str, scope: str) -> None:
        """The API's side of one request: each check of the token, and which one failed."""
        request_id = response.headers.get("X-Request-ID", "")
        messages = [line.message for line in app_log_lines(self.logs / "shopping-api.log", request_id)]
        failed = failed_check(messages)
        self.say.line()
        verdict = f"refused at the {failed[0]} check" if failed else "every check passed"
        self.say.line(f"The API's checks (shopping_api/auth.py): {verdict}", indent=2)
        rows = check_rows(
            token,
            issuer=issuer_for(self.endpoint),
            resource=RESOURCE,
            scope=scope,
            failed=failed[0] if failed else None,
            now=dt.datetime.now(dt.UTC),
        )
        self.say.checks(rows)
        for message in messages:
            self.say.output(f"INFO shopping_api.auth: {message}  [request {request_id[:8]}...]")

    def admin_token(self) -> None:
        self.say.step(
            "The admin app asks the issuer for an access token",
            "stats_worker/token_client.py; the issuer's side: local_issuer/oauth.py, local_issuer/tokens.py",
        )
        self.say.say(
            "client_credentials grant: the app authenticates with its App ID and secret "
            "(HTTP Basic) and names the API (`resource`) and the scopes it wants."
        )
        self.say.line()
        self.show_next = True
        token = self.admin.get_token(RESOURCE, ADMIN_SCOPES)
        self.say.line()
        self.say.token(token)

    def call_api(self) -> None:
        self.say.step(
            "Call the API: without a token, then with one",
            "shopping_api/auth.py (the checks), shopping_api/products.py",
        )
        self.show_next = True
        self.http.get(self.api_url + "/products")
        self.say.line()
        self.say.say(
            "The 401 names the scheme (WWW-Authenticate: Bearer). With the token, the "
            "API checks signature, iss, aud, expiry and the route's scope:"
        )
        self.say.line()
        admin = self.admin.get_token(RESOURCE, ADMIN_SCOPES)
        self.show_next = True
        accepted = self.http.get(self.api_url + "/products", headers={"Authorization": f"Bearer {admin}"})
        self.show_api_checks(accepted, admin, "read:products")
        self.say.line()
        self.say.say("The stats worker's app holds read scopes only; a write is refused with 403:")
        self.say.line()
        reader = self.token_client(self.worker_app).get_token(RESOURCE, WORKER_SCOPES)
        self.show_next = True
        refused = self.http.post(
            self.api_url + "/products",
            headers={"Authorization": f"Bearer {reader}"},
            json={"sku": "NOPE-1", "name": "Not allowed", "price": 1, "currency": "USD"},
        )
        self.show_api_checks(refused, reader, "write:products")
        self.say.line()
        self.say.say(
            "A valid token for another API is refused with 401: the worker's Management API token "
            "names https://default.logto.app/api as its audience, not the shopping API:"
        )
        self.say.line()
        other = self.token_client(self.worker_app).get_token(
            OSS_MANAGEMENT_API_RESOURCE, MANAGEMENT_API_SCOPE
        )
        self.show_next = True
        wrong_audience = self.http.get(
            self.api_url + "/products", headers={"Authorization": f"Bearer {other}"}
        )
        self.show_api_checks(wrong_audience, other, "read:products")

    def create_catalog(self) -> list[dict[str, Any]]:
        self.say.step(
            "Create the catalog (write:products)", "shopping_api/products.py, shopping_api/schemas.py"
        )
        products = []
        for i, (sku, name, price, currency) in enumerate(CATALOG):
            self.show_next = i == 0
            response = self.http.post(
                self.api_url + "/products",
                auth=self.admin_auth,
                json={
                    "sku": sku,
                    "name": name,
                    "price": price,
                    "currency": currency,
                    "description": f"Demo product {sku}",
                },
            )
            response.raise_for_status()
            products.append(response.json())
        self.say.line()
        self.say.line(f"{len(products)} products created, created_by = {products[0]['created_by']!r}:")
        self.say.table([(p["sku"], f"{p['name']}, {money(p['price'], p['currency'])}") for p in products])
        return products

    def place_orders(self, products: list[dict[str, Any]]) -> tuple[dt.date, list[dict[str, Any]]]:
        self.say.step("Place orders (write:orders)", "shopping_api/orders.py")
        self.say.say(
            "The customers are the Logto user ids of the users just provisioned. "
            "An order's items share its currency."
        )
        self.say.line()
        rng = random.Random(2026)  # noqa: S311 -- sample data, the same orders on every run
        by_currency: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
        for product in products:
            by_currency[product["currency"]].append(product)
        orders = []
        for i in range(ORDERS):
            currency = sorted(by_currency)[i % len(by_currency)]
            picks = rng.sample(by_currency[currency], rng.randint(1, len(by_currency[currency])))
            body: dict[str, Any] = {
                "customer_id": self.customers[i % len(self.customers)],
                "items": [{"product_id": p["id"], "quantity": rng.randint(1, 3)} for p in picks],
            }
            self.show_next = i == 0
            response = self.http.post(self.api_url + "/orders", json=body, auth=self.admin_auth)
            response.raise_for_status()
            orders.append(response.json())
        day = dt.datetime.fromisoformat(orders[0]["created_at"]).astimezone(dt.UTC).date()
        totals: Counter[str] = Counter()
        for order in orders:
            totals[order["currency"]] += order["total"]
        self.say.line()
        self.say.line(
            f"{len(orders)} orders for {len({o['customer_id'] for o in orders})} customers: "
            + ", ".join(money(total, cur) for cur, total in sorted(totals.items()))
        )
        return day, orders

    def run_worker(self, day: dt.date) -> None:
        self.say.step(
            "Run the stats worker once (the M2M app)",
            "stats_worker/job.py, stats_worker/api_client.py, stats_worker/report.py, "
            "stats_worker/custom_data.py",
        )
        self.say.say(
            "`stats-worker once` gets its own token (read:orders read:products), pages "
            "through the day's orders, writes the report, then gets a Management API token "
            "(scope all) and writes each customer's figures to their Logto custom data. "
            f"The orders were placed just now, so the demo asks for today ({day}); on its "
            "schedule the worker reports on yesterday."
        )
        self.say.line()
        argv = [bin_path("stats-worker"), "once", "--date", day.isoformat()]
        self.say.line("$ stats-worker once --date " + day.isoformat(), indent=2)
        result = run_program(argv, env=self.worker_env(), cwd=self.workdir)
        self.show_output(result.stdout)
        if result.returncode != 0:
            raise RuntimeError(f"stats-worker once exited with status {result.returncode}")

    def read_custom_data(self, orders: list[dict[str, Any]]) -> None:
        self.say.step(
            "Read a customer's custom data through the Management API", "local_issuer/management/users.py"
        )
        customer = orders[0]["customer_id"]
        client = self.token_client(self.worker_app)
        token = client.get_token(OSS_MANAGEMENT_API_RESOURCE, MANAGEMENT_API_SCOPE)
        self.say.say(
            "The worker wrote each customer's figures with PATCH /api/users/{id}/custom-data "
            '{"customData": {"shopping": {...}}} (Logto merges top-level keys). '
            "Reading one back takes a Management API token, resource "
            f"{OSS_MANAGEMENT_API_RESOURCE}, scope {MANAGEMENT_API_SCOPE}: {shorten_token(token)}"
        )
        self.say.line()
        self.show_next = True
        response = self.http.get(
            f"{self.endpoint}/api/users/{customer}/custom-data", headers={"Authorization": f"Bearer {token}"}
        )
        response.raise_for_status()

    def check_report(self, day: dt.date, orders: list[dict[str, Any]]) -> None:
        self.say.step(
            "Check the report against the orders placed",
            "stats_worker/report.py, stats_worker/report_file.py",
        )
        path = self.reports / f"{day.isoformat()}.json"
        report = json.loads(path.read_text(encoding="utf-8"))
        placed: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for order in orders:
            placed[order["currency"]][0] += 1
            placed[order["currency"]][1] += order["total"]
        self.say.line(self.relative(path) + ":")
        rows = [("orders", report["orders"]), ("units", report["units"]), ("customers", report["customers"])]
        for currency, figures in report["currencies"].items():
            rows.append(
                (
                    currency,
                    f"{money(figures['revenue'], currency)} from {figures['orders']} "
                    f"orders, average {money(figures['average_order_value'], currency)}",
                )
            )
        sync = report.get("custom_data_sync") or {}
        rows.append(
            (
                "custom data",
                ", ".join(f"{sync.get(what, 0)} {what}" for what in ("synced", "skipped", "failed")),
            )
        )
        self.say.table(rows)
        reported = {currency: [f["orders"], f["revenue"]] for currency, f in report["currencies"].items()}
        expected_customers = len({order["customer_id"] for order in orders})
        if reported != dict(placed) or report["customers"] != expected_customers:
            raise RuntimeError(f"the report does not match the orders placed: {dict(placed)}")
        self.say.line()
        self.say.line(
            "Matches the orders the demo placed: "
            + ", ".join(f"{n} in {money(total, cur)}" for cur, (n, total) in sorted(placed.items()))
        )
