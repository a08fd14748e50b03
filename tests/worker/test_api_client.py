"""The orders client against a real HTTP server that pages, fails and recovers on cue."""

from __future__ import annotations

import datetime as dt
import time
from zoneinfo import ZoneInfo

import pytest
from msgspec import to_builtins

from stats_worker.api_client import ApiError, ShoppingApiClient
from stats_worker.token_client import BearerAuth

from .conftest import quick_session
from .fakes import FakeServer, OrdersApi, Reply, make_orders

DAY = dt.date(2026, 11, 20)
SCOPES = ("read:orders", "read:products")


@pytest.fixture
def orders():
    return make_orders(DAY, ZoneInfo("UTC"), 2500)


@pytest.fixture
def api(token_endpoint, orders):
    return OrdersApi(token_endpoint, orders)


@pytest.fixture
def shop(api):
    with FakeServer(api) as server:
        yield server


@pytest.fixture
def client(shop, token_client):
    return ShoppingApiClient(
        shop.url,
        quick_session(),
        BearerAuth(token_client, "https://shopping.api", SCOPES),
        page_size=1000,
        backoff=0.01,
    )


def fetch_all(client):
    return [order for page in client.iter_order_pages(DAY, "Europe/Berlin") for order in to_builtins(page)]


def test_follows_the_cursor_page_by_page_with_one_token(client, shop, logto, orders):
    pages = list(client.iter_order_pages(DAY, "Europe/Berlin"))
    assert [len(p) for p in pages] == [1000, 1000, 500]
    assert [o for p in pages for o in to_builtins(p)] == orders
    assert [r.query for r in shop.requests] == [
        {"date": "2026-11-20", "tz": "Europe/Berlin", "limit": "1000"},
        {"date": "2026-11-20", "tz": "Europe/Berlin", "limit": "1000", "cursor": "1000"},
        {"date": "2026-11-20", "tz": "Europe/Berlin", "limit": "1000", "cursor": "2000"},
    ]
    assert logto.count("/oidc/token") == 1


def test_500_is_retried(client, api, shop, orders):
    api.faults[2] = Reply(500, {"error": "server_error"})
    assert fetch_all(client) == orders
    assert len(shop.requests) == 4


def test_429_waits_for_retry_after(client, api, shop, orders):
    api.faults[1] = Reply(429, {"error": "slow_down"}, {"Retry-After": "1"})
    started = time.monotonic()
    assert fetch_all(client) == orders
    assert time.monotonic() - started >= 0.95
    assert len(shop.requests) == 4


def test_connection_reset_mid_page_refetches_that_page(client, api, shop, orders):
    api.faults[2] = Reply(200, {"orders": orders[1000:2000], "next_cursor": "2000"}, reset_after=5000)
    assert fetch_all(client) == orders
    assert [r.query.get("cursor") for r in shop.requests] == [None, "1000", "1000", "2000"]


def test_resets_that_persist_are_a_clear_error(client, api):
    for n in range(2, 8):
        api.faults[n] = Reply(200, {"orders": [], "next_cursor": None}, reset_after=3)
    with pytest.raises(ApiError, match="breaking off mid-response"):
        fetch_all(client)


def test_500_that_persists_is_a_clear_error(client, api):
    for n in range(1, 6):
        api.faults[n] = Reply(503, {"error": "unavailable", "error_description": "maintenance"})
    with pytest.raises(ApiError, match=r"HTTP 503: unavailable \(maintenance\).*after retries"):
        fetch_all(client)


def test_slow_api_times_out_and_is_retried(shop, api, token_client, orders):
    client = ShoppingApiClient(
        shop.url,
        quick_session(timeout=(1.0, 0.3)),
        BearerAuth(token_client, "https://shopping.api", SCOPES),
        page_size=1000,
    )
    api.faults[1] = Reply(200, {"orders": [], "next_cursor": None}, delay=0.6)
    assert fetch_all(client) == orders


def test_401_after_key_rotation_costs_one_new_token(client, token_endpoint, api, shop, logto, orders):
    pages = client.iter_order_pages(DAY, "UTC")
    first = to_builtins(next(pages))
    token_endpoint.rotate()
    rest = [o for page in pages for o in to_builtins(page)]
    assert first + rest == orders
    assert logto.count("/oidc/token") == 2
    assert [r.form["resource"] for r in logto.requests] == ["https://shopping.api"] * 2


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (
            Reply(
                403,
                {"error": "insufficient_scope", "error_description": "needs read:orders"},
                {"WWW-Authenticate": 'Bearer error="insufficient_scope", scope="read:orders"'},
            ),
            'HTTP 403: insufficient_scope.*scope="read:orders".*STATS_SCOPES',
        ),
        (
            Reply(
                400, {"error": "invalid_request", "error_description": "bad date", "fields": {"date": "x"}}
            ),
            r"HTTP 400: invalid_request \(bad date\)",
        ),
        (Reply(200, b"<html>"), "not JSON"),
        (Reply(200, {"products": []}), "without an orders list"),
        (Reply(200, [1, 2]), "not an object"),
    ],
)
def test_unusable_answers_are_clear_errors(client, api, reply, message):
    api.faults[1] = reply
    with pytest.raises(ApiError, match=message):
        fetch_all(client)


def test_a_cursor_that_repeats_stops_the_loop(client, api):
    api.faults[1] = Reply(200, {"orders": [], "next_cursor": "x"})
    api.faults[2] = Reply(200, {"orders": [], "next_cursor": "x"})
    with pytest.raises(ApiError, match="already returned"):
        fetch_all(client)


def test_api_down_is_a_clear_error(token_client):
    client = ShoppingApiClient(
        "http://127.0.0.1:9",
        quick_session(retries=1),
        BearerAuth(token_client, "https://shopping.api", SCOPES),
    )
    with pytest.raises(ApiError, match=r"cannot reach the shopping API.*SHOPPING_API_URL"):
        fetch_all(client)
