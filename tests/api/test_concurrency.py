"""Many clients writing at once through real gunicorn workers: no 5xx, no lost update.

Threads read a product and write ``price + 1`` back with ``If-Match``; a write that lost the race
gets 412 and is retried. At the end the price must equal the number of successful writes (a lost
update would leave it lower), and every order created in parallel must be listed.
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.api.fixtures import shared_jwks_server  # noqa: F401 (fixture)
from tests.conftest import api_process_env
from tests.support import ServerProcess, free_port, gunicorn_argv

INCREMENTERS, INCREMENTS_EACH = 8, 10
ORDER_THREADS, ORDERS_EACH = 4, 10


@pytest.fixture
def server(app, database_url, jwks_server, tmp_path):
    """The API under gunicorn (3 workers) on the test database (``app`` created its schema)."""
    port = free_port()
    env = api_process_env(jwks_server, database_url)
    with ServerProcess(
        gunicorn_argv(port, workers=3), env=env, cwd=tmp_path, ready_url=f"http://127.0.0.1:{port}/healthz"
    ) as process:
        yield f"http://127.0.0.1:{port}", process


@pytest.mark.slow
def test_concurrent_writers_lose_nothing(server, make_token):
    base, process = server
    headers = {"Authorization": f"Bearer {make_token()}"}
    statuses: Counter[int] = Counter()
    lock = threading.Lock()

    def call(session: requests.Session, method: str, path: str, **kwargs) -> requests.Response:
        response = session.request(
            method, base + path, headers={**headers, **kwargs.pop("headers", {})}, timeout=30, **kwargs
        )
        with lock:
            statuses[response.status_code] += 1
        return response

    with requests.Session() as session:
        product = call(
            session,
            "POST",
            "/products",
            json={"sku": "RACE-1", "name": "Contended", "price": 0, "currency": "USD"},
        ).json()
    url = f"/products/{product['id']}"

    def increment(worker: int) -> int:
        done = 0
        with requests.Session() as session:
            for _attempt in range(500):
                if done == INCREMENTS_EACH:
                    break
                current = call(session, "GET", url)
                price, etag = current.json()["price"], current.headers["ETag"]
                if worker % 2:  # half replace the whole product, half patch one field
                    write = call(
                        session,
                        "PUT",
                        url,
                        headers={"If-Match": etag},
                        json={"sku": "RACE-1", "name": "Contended", "price": price + 1, "currency": "USD"},
                    )
                else:
                    write = call(session, "PATCH", url, headers={"If-Match": etag}, json={"price": price + 1})
                if write.status_code == 200:
                    done += 1
                else:
                    assert write.status_code == 412, write.text
        return done

    def create_orders(_worker: int) -> list[dict]:
        with requests.Session() as session:
            return [
                call(
                    session,
                    "POST",
                    "/orders",
                    json={
                        "customer_id": "user-carol",
                        "items": [{"product_id": product["id"], "quantity": 2}],
                    },
                ).json()
                for _ in range(ORDERS_EACH)
            ]

    with ThreadPoolExecutor(INCREMENTERS + ORDER_THREADS) as pool:
        increments = pool.map(increment, range(INCREMENTERS))
        order_batches = pool.map(create_orders, range(ORDER_THREADS))
        successes = sum(increments)
        orders = [order for batch in order_batches for order in batch]

    assert not [s for s in statuses if s >= 500], (statuses, process.log_text()[-3000:])
    assert successes == INCREMENTERS * INCREMENTS_EACH
    assert statuses[412] > 0  # the writers really raced

    with requests.Session() as session:
        final = call(session, "GET", url)
        assert final.json()["price"] == successes  # every successful write is reflected
        assert final.headers["ETag"] == f'"{1 + successes}"'

        assert len({order["id"] for order in orders}) == ORDER_THREADS * ORDERS_EACH
        listed = []
        for day in sorted({order["created_at"][:10] for order in orders}):
            page = call(session, "GET", "/orders", params={"date": day, "limit": 1000}).json()
            listed += page["orders"]
    assert sorted(o["id"] for o in listed) == sorted(o["id"] for o in orders)
    # Each order was priced with whatever the product cost at that instant: 2 x a price seen.
    assert all(o["total"] == 2 * o["items"][0]["unit_price"] <= 2 * successes for o in listed)
