"""The whole stack as real processes on 127.0.0.1: the local issuer, the shopping API under
gunicorn with several workers, and the data seeded through the API with the admin app's token.

The seed is described here (catalog, orders) so the tests can compute every figure of the report
from it on their own, without trusting what the API or the worker say.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from logto_m2m.logto import OSS_MANAGEMENT_API_RESOURCE, issuer_for
from stats_worker.token_client import BearerAuth, TokenClient
from tests.support import ServerProcess, clean_env, free_port, gunicorn_argv, run_script, script

RESOURCE = "https://shopping.api"
ADMIN = ("m2m-admin", "admin-local-secret")
WORKER = ("m2m-stats-worker", "stats-worker-local-secret")
API_WORKERS = 3

#: sku -> (price in minor units, currency)
CATALOG = {
    "MUG": (1299, "USD"),
    "TEE": (2499, "USD"),
    "CAP": (1850, "USD"),
    "BEANS": (2190, "EUR"),
    "NOTE": (950, "EUR"),
    "TEA": (60000, "JPY"),  # a currency with no minor unit: still integers, never floats
}
#: The issuer's users, plus one it does not know: the worker must skip that one, not fail.
KNOWN_CUSTOMERS = ("user-alice", "user-bob", "user-carol", "user-dave")
UNKNOWN_CUSTOMER = "user-zed"


def seeded_orders() -> list[tuple[str, list[tuple[str, int]]]]:
    """40 orders: (customer, [(sku, quantity)]), one currency each, over five customers."""
    customers = (*KNOWN_CUSTOMERS, UNKNOWN_CUSTOMER)
    baskets = [
        [("MUG", 1)],
        [("TEE", 2), ("MUG", 1)],
        [("BEANS", 3)],
        [("NOTE", 1), ("BEANS", 1)],
        [("TEA", 1)],
        [("CAP", 4)],
        [("MUG", 2), ("CAP", 1), ("TEE", 1)],
        [("NOTE", 5)],
    ]
    return [(customers[i % len(customers)], baskets[(i * 3) % len(baskets)]) for i in range(40)]


@dataclass
class Stack:
    issuer: ServerProcess
    api: ServerProcess
    endpoint: str
    api_url: str
    workdir: Path
    product_ids: dict[str, int] = field(default_factory=dict)
    #: What was placed: (customer, [(sku, qty)], created_at) per order, in the order placed.
    orders: list[tuple[str, list[tuple[str, int]], dt.datetime]] = field(default_factory=list)

    @property
    def token_endpoint(self) -> str:
        return issuer_for(self.endpoint) + "/token"

    def worker_env(self, reports: Path, **overrides: str) -> dict[str, str]:
        settings = {
            "LOGTO_ENDPOINT": self.endpoint,
            "LOGTO_APP_ID": WORKER[0],
            "LOGTO_APP_SECRET": WORKER[1],
            "SHOPPING_API_RESOURCE": RESOURCE,
            "SHOPPING_API_URL": self.api_url,
            "STATS_SCOPES": "read:orders read:products",
            "STATS_TIMEZONE": "UTC",
            "REPORTS_DIR": str(reports),
            "LOGTO_MANAGEMENT_API_RESOURCE": OSS_MANAGEMENT_API_RESOURCE,
            "STATS_PAGE_SIZE": "7",  # 40 orders: six pages, one token
        }
        settings.update(overrides)
        return clean_env(**settings)

    def worker(self, *args: str, reports: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return run_script(
            "stats-worker", *args, env=self.worker_env(reports), cwd=self.workdir, timeout=timeout
        )

    def management_get(self, path: str) -> requests.Response:
        client = TokenClient(self.token_endpoint, *WORKER)
        token = client.get_token(OSS_MANAGEMENT_API_RESOURCE, "all")
        return requests.get(self.endpoint + path, headers={"Authorization": f"Bearer {token}"}, timeout=10)


def _seed(stack: Stack) -> None:
    auth = BearerAuth(TokenClient(stack.token_endpoint, *ADMIN), RESOURCE, "write:products write:orders")
    with requests.Session() as http:
        for sku, (price, currency) in CATALOG.items():
            response = http.post(
                stack.api_url + "/products",
                auth=auth,
                timeout=10,
                json={"sku": sku, "name": f"Product {sku}", "price": price, "currency": currency},
            )
            assert response.status_code == 201, response.text
            stack.product_ids[sku] = response.json()["id"]
        for customer, basket in seeded_orders():
            body = {
                "customer_id": customer,
                "items": [{"product_id": stack.product_ids[sku], "quantity": qty} for sku, qty in basket],
            }
            response = http.post(stack.api_url + "/orders", json=body, auth=auth, timeout=10)
            assert response.status_code == 201, response.text
            created = dt.datetime.fromisoformat(response.json()["created_at"])
            stack.orders.append((customer, basket, created))


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("e2e")
    issuer_port, api_port = free_port(), free_port()
    endpoint, api_url = f"http://127.0.0.1:{issuer_port}", f"http://127.0.0.1:{api_port}"
    issuer = ServerProcess(
        [
            script("local-issuer"),
            "--host",
            "127.0.0.1",
            "--port",
            str(issuer_port),
            "--state-dir",
            str(workdir / "issuer"),
        ],
        env=clean_env(),
        cwd=workdir,
        log_path=workdir / "issuer.log",
        ready_url=issuer_for(endpoint) + "/.well-known/openid-configuration",
    )
    api_env = clean_env(
        LOGTO_ENDPOINT=endpoint,
        SHOPPING_API_RESOURCE=RESOURCE,
        DATABASE_URL=f"sqlite:///{workdir / 'shop.sqlite'}",
    )
    subprocess.run(
        [sys.executable, "-m", "flask", "--app", "shopping_api", "init-db"],
        env=api_env,
        cwd=workdir,
        check=True,
        capture_output=True,
        timeout=60,
    )
    api = ServerProcess(
        gunicorn_argv(api_port, workers=API_WORKERS),
        env=api_env,
        cwd=workdir,
        log_path=workdir / "api.log",
        ready_url=api_url + "/healthz",
    )
    stack = Stack(issuer, api, endpoint, api_url, workdir)
    with issuer, api:
        _seed(stack)
        yield stack
