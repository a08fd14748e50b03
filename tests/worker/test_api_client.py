"""The orders client against a real HTTP server that pages, fails and recovers on cue."""

from __future__ import annotations

import datetime as dt
import time
from zoneinfo import ZoneInfo

import pytest
from msgspec import to_builtins

from stats_worker.api_client import ApiError, ShoppingApiClient
from stats_worker.token_client import BearerAuth
from tests.support import free_port

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
    with pytest.raises(ApiError, match=r"broke off mid-response on each of 4 attempt\(s\)"):
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


def test_an_api_that_never_answers_is_not_called_unreachable(shop, api, token_client):
    client = ShoppingApiClient(
        shop.url,
        quick_session(timeout=(1.0, 0.2), retries=1),
        BearerAuth(token_client, "https://shopping.api", SCOPES),
    )
    for n in range(1, 4):
        api.faults[n] = Reply(200, {"orders": [], "next_cursor": None}, delay=0.5)
    with pytest.raises(ApiError) as raised:
        fetch_all(client)
    message = str(raised.value)
    assert "sent no answer within the read timeout (STATS_HTTP_TIMEOUT_SECONDS)" in message
    assert "cannot reach" not in message and len(shop.requests) == 2


def test_401_after_key_rotation_costs_one_new_token(token_client, token_endpoint, api, shop, logto, orders):
    # Five pages: while the caller holds the first, the read-ahead may already hold the second and
    # the third, but it asks for the fourth only once the caller takes the second, so at least one
    # request goes out after the rotation, whatever the threads' timing.
    client = ShoppingApiClient(
        shop.url, quick_session(), BearerAuth(token_client, "https://shopping.api", SCOPES), page_size=500
    )
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


def stall(orders, start, stop, cursor):
    """A page whose headers and first 5,000 bytes arrive, then nothing for a while."""
    return Reply(
        200, {"orders": orders[start:stop], "next_cursor": cursor}, stall_after=5000, stall_seconds=1.5
    )


@pytest.fixture
def stall_client(shop, token_client):
    """Reads time out after 0.3 s, so a stalled body is noticed quickly."""
    return ShoppingApiClient(
        shop.url,
        quick_session(timeout=(1.0, 0.3)),
        BearerAuth(token_client, "https://shopping.api", SCOPES),
        page_size=1000,
        body_retries=2,
        backoff=0.01,
    )


def test_a_body_that_stalls_mid_page_is_retried(stall_client, api, shop, orders, caplog):
    api.faults[2] = stall(orders, 1000, 2000, "2000")
    assert fetch_all(stall_client) == orders
    assert [r.query.get("cursor") for r in shop.requests] == [None, "1000", "1000", "2000"]
    stalled_id = shop.requests[1].headers["x-request-id"]
    (line,) = [r.getMessage() for r in caplog.records if "response body" in r.getMessage()]
    assert line.startswith("GET /orders: response body stalled until the read timeout; retry 1 of 2 in ")
    assert line.endswith(f"(request id {stalled_id})")


def test_a_body_that_keeps_stalling_says_it_timed_out(stall_client, api, shop, orders):
    for n in range(2, 5):
        api.faults[n] = stall(orders, 1000, 2000, "2000")
    with pytest.raises(ApiError) as raised:
        fetch_all(stall_client)
    message = str(raised.value)
    assert "stalled until the read timeout on each of 3 attempt(s)" in message
    assert "STATS_HTTP_TIMEOUT_SECONDS" in message and "cannot reach" not in message
    assert len(shop.requests) == 4  # the first page, then the second page three times
    assert message.endswith(f"(last request id {shop.requests[-1].headers['x-request-id']})")


def test_each_page_request_carries_its_own_request_id(client, shop):
    fetch_all(client)
    ids = [r.headers.get("x-request-id", "") for r in shop.requests]
    assert len(set(ids)) == 3 and all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


def test_a_failure_names_the_request_id_the_api_saw(client, api, shop):
    for n in range(1, 6):
        api.faults[n] = Reply(503, {"error": "unavailable"})
    with pytest.raises(ApiError) as raised:
        fetch_all(client)
    ids = {r.headers["x-request-id"] for r in shop.requests}
    assert len(ids) == 1  # urllib3's retries resend the same request, id included
    assert str(raised.value).endswith(f"(request id {ids.pop()})")


def test_retries_are_logged_as_one_line_without_the_query(client, api, shop, orders, caplog):
    api.faults[2] = Reply(500, {"error": "server_error"})
    assert fetch_all(client) == orders
    retried = shop.requests[1]
    lines = [r.getMessage() for r in caplog.records if r.name == "logto_m2m.http"]
    assert lines == [
        f"GET /orders: HTTP 500; retry 1 of 3 in 0.0 s (request id {retried.headers['x-request-id']})"
    ]
    assert retried.query["cursor"] == "1000"


def test_connection_retries_drop_urllib3s_lines_with_the_cursor(token_client, caplog):
    client = ShoppingApiClient(
        f"http://127.0.0.1:{free_port()}",
        quick_session(retries=2),
        BearerAuth(token_client, "https://shopping.api", SCOPES),
    )
    with pytest.raises(ApiError):
        fetch_all(client)
    messages = [r.getMessage() for r in caplog.records]
    ours = [m for m in messages if m.startswith("GET /orders: NewConnectionError; retry ")]
    assert [m.split(";")[1].split(" in ")[0] for m in ours] == [" retry 1 of 2", " retry 2 of 2"]
    assert not [m for m in messages if "Retrying (" in m or "date=" in m]


def test_credentials_in_the_api_url_never_reach_a_message(token_client, caplog):
    client = ShoppingApiClient(
        f"http://stats:pa55word@127.0.0.1:{free_port()}",
        quick_session(retries=1),
        BearerAuth(token_client, "https://shopping.api", SCOPES),
    )
    with pytest.raises(ApiError) as raised:
        fetch_all(client)
    assert "cannot reach the shopping API at http://***@127.0.0.1:" in str(raised.value)
    assert "pa55word" not in str(raised.value) + caplog.text and "stats:" not in caplog.text


@pytest.mark.parametrize(
    ("description", "hint"),
    [
        ("the access token was signed with an unknown key", "Logto rotated its signing keys"),
        ("the access token was not issued by the trusted issuer", "LOGTO_ISSUER"),
        ("the access token was issued for another API (aud)", "SHOPPING_API_RESOURCE must equal"),
        ("the access token has expired", "clocks"),
        ("the access token's signature is invalid", "different Logto tenants"),
        ("something new", "The usual causes: SHOPPING_API_RESOURCE"),
        (None, "The usual causes: SHOPPING_API_RESOURCE"),
    ],
)
def test_a_refused_fresh_token_gets_the_hint_its_description_points_to(
    client, shop, logto, description, hint
):
    body = {"error": "invalid_token"} | ({"error_description": description} if description else {})
    shop.handler = lambda request: Reply(401, body, {"WWW-Authenticate": 'Bearer error="invalid_token"'})
    with pytest.raises(ApiError) as raised:
        fetch_all(client)
    message = str(raised.value)
    assert message.startswith("GET /orders answered HTTP 401: invalid_token") and hint in message
    others = {"LOGTO_ISSUER", "SHOPPING_API_RESOURCE", "rotated"} - {
        h for h in ("LOGTO_ISSUER",) if h in hint
    }
    if description and description != "something new":
        # a specific hint names its cause, not the whole list
        assert "The usual causes" not in message
    assert logto.count("/oidc/token") == 2  # a fresh token was tried before giving up
    del others
