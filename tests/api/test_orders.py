"""Orders: atomic creation with exact money, and the listing by calendar day (time zones, DST,
keyset pagination, cursor checks)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, date, datetime, timedelta

import pytest

from shopping_api.orders import day_bounds
from shopping_api.schemas import OrderOut, OrderPage
from tests.api.conftest import walk
from tests.api.fixtures import shared_jwks_server  # noqa: F401 (fixture)
from tests.conftest import APP_ID


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def b64json(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def listed_ids(client, auth, **params) -> list[int]:
    orders, _pages = walk(client, "/orders", auth, "orders", **params)
    return [order["id"] for order in orders]


def test_create_order_copies_prices_and_totals_exactly(client, auth, new_product):
    mug = new_product(price=1999, currency="EUR")
    lamp = new_product(price=10**12, currency="EUR")  # the largest price, times a large quantity
    before = datetime.now(UTC)
    response = client.post(
        "/orders",
        headers=auth,
        json={
            "customer_id": "user-alice",
            "items": [
                {"product_id": mug["id"], "quantity": 3},
                {"product_id": lamp["id"], "quantity": 10_000},
            ],
        },
    )
    assert response.status_code == 201, response.json
    order = response.json
    OrderOut.model_validate(order)
    assert order["total"] == 3 * 1999 + 10_000 * 10**12 and isinstance(order["total"], int)
    assert order["currency"] == "EUR" and order["customer_id"] == "user-alice"
    assert order["created_by"] == APP_ID
    assert order["items"] == [
        {"product_id": mug["id"], "sku": mug["sku"], "name": mug["name"], "quantity": 3, "unit_price": 1999},
        {
            "product_id": lamp["id"],
            "sku": lamp["sku"],
            "name": lamp["name"],
            "quantity": 10_000,
            "unit_price": 10**12,
        },
    ]
    created = datetime.fromisoformat(order["created_at"])
    assert order["created_at"].endswith("+00:00") and before <= created <= datetime.now(UTC)

    # The listing returns the same order, byte for byte in value.
    listed = client.get(f"/orders?date={created.date()}", headers=auth).json["orders"]
    assert listed == [order]


def test_an_order_keeps_its_copy_of_the_product(client, auth, new_product):
    product = new_product(price=500)
    order = client.post(
        "/orders",
        headers=auth,
        json={"customer_id": "user-bob", "items": [{"product_id": product["id"], "quantity": 2}]},
    ).json
    client.patch(
        f"/products/{product['id']}",
        json={"price": 900, "name": "Renamed"},
        headers={**auth, "If-Match": '"1"'},
    )
    assert client.delete(f"/products/{product['id']}", headers=auth).status_code == 204
    day = order["created_at"][:10]
    listed = client.get(f"/orders?date={day}", headers=auth).json["orders"]
    assert listed[0]["items"][0]["unit_price"] == 500 and listed[0]["total"] == 1000
    assert listed[0]["items"][0]["name"] == product["name"]


def test_order_problems_name_each_item(client, auth, new_product):
    usd = new_product(currency="USD")
    jpy = new_product(currency="JPY")
    unknown = client.post(
        "/orders",
        headers=auth,
        json={
            "customer_id": "user-alice",
            "items": [{"product_id": usd["id"], "quantity": 1}, {"product_id": 999_999, "quantity": 1}],
        },
    )
    assert unknown.status_code == 422 and set(unknown.json["fields"]) == {"items.1.product_id"}
    mixed = client.post(
        "/orders",
        headers=auth,
        json={
            "customer_id": "user-alice",
            "items": [{"product_id": usd["id"], "quantity": 1}, {"product_id": jpy["id"], "quantity": 1}],
        },
    )
    assert mixed.status_code == 422 and set(mixed.json["fields"]) == {"items.1.product_id"}
    invalid = client.post(
        "/orders",
        headers=auth,
        json={
            "customer_id": "",
            "items": [
                {"product_id": usd["id"], "quantity": 0},
                {"product_id": "1", "quantity": 10_001},
                {"product_id": usd["id"]},
            ],
        },
    )
    assert invalid.status_code == 422
    assert set(invalid.json["fields"]) == {
        "customer_id",
        "items.0.quantity",
        "items.1.product_id",
        "items.1.quantity",
        "items.2.quantity",
    }
    twice = client.post(
        "/orders",
        headers=auth,
        json={"customer_id": "user-alice", "items": [{"product_id": usd["id"], "quantity": 1}] * 2},
    )
    assert twice.status_code == 422 and set(twice.json["fields"]) == {"items"}
    empty = client.post("/orders", headers=auth, json={"customer_id": "user-alice", "items": []})
    assert empty.status_code == 422 and set(empty.json["fields"]) == {"items"}
    # None of the refused orders was written.
    assert client.get(f"/orders?date={datetime.now(UTC).date()}", headers=auth).json["orders"] == []


def test_day_in_a_time_zone(client, auth, insert_order):
    # 2026-11-20 in Paris (UTC+1) runs from 2026-11-19T23:00Z to 2026-11-20T23:00Z.
    before = insert_order(utc(2026, 11, 19, 22, 59, 59, 999999))
    first = insert_order(utc(2026, 11, 19, 23, 0))
    last = insert_order(utc(2026, 11, 20, 22, 59, 59, 999999))
    after = insert_order(utc(2026, 11, 20, 23, 0))
    page = client.get("/orders?date=2026-11-20&tz=Europe/Paris", headers=auth).json
    OrderPage.model_validate(page)
    assert page["date"] == "2026-11-20" and page["tz"] == "Europe/Paris"
    assert [o["id"] for o in page["orders"]] == [first, last]
    assert page["orders"][0]["created_at"] == "2026-11-19T23:00:00.000000+00:00"
    assert listed_ids(client, auth, date="2026-11-20") == [last, after]  # UTC by default
    assert listed_ids(client, auth, date="2026-11-19") == [before, first]


@pytest.mark.parametrize(("day", "hours"), [("2026-03-08", 23), ("2026-11-01", 25)])
def test_dst_days_are_23_or_25_hours(client, auth, insert_order, day, hours):
    start, end = day_bounds(date.fromisoformat(day), "America/New_York")
    assert end - start == timedelta(hours=hours)
    tick = timedelta(microseconds=1)
    outside = [insert_order(start - tick), insert_order(end)]
    inside = [
        insert_order(start),
        insert_order(start + timedelta(hours=hours - 1, minutes=30)),
        insert_order(end - tick),
    ]
    assert listed_ids(client, auth, date=day, tz="America/New_York", limit=2) == inside
    assert not set(outside) & set(listed_ids(client, auth, date=day, tz="America/New_York"))


def test_pagination_walks_every_order_once_in_order(client, auth, insert_order):
    noon = utc(2026, 5, 1, 12)
    # Ties on created_at are broken by id, so identical timestamps still page correctly.
    ids = [insert_order(noon + timedelta(seconds=n // 3)) for n in range(23)]
    orders, pages = walk(client, "/orders", auth, "orders", date="2026-05-01", limit=4)
    assert [o["id"] for o in orders] == ids and pages == 6
    keys = [(o["created_at"], o["id"]) for o in orders]
    assert keys == sorted(keys)
    default = client.get("/orders?date=2026-05-01", headers=auth).json
    assert len(default["orders"]) == 23 and default["next_cursor"] is None  # default limit is 100


def test_cursor_checks(client, auth, insert_order):
    for n in range(3):
        insert_order(utc(2026, 5, 1, 12, n))
    url = "/orders?date=2026-05-01&tz=UTC&limit=1"
    cursor = client.get(url, headers=auth).json["next_cursor"]
    decoded = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    assert client.get(f"{url}&cursor={cursor}", headers=auth).status_code == 200

    def refused(query: str) -> dict:
        response = client.get(query, headers=auth)
        assert response.status_code == 400, query
        assert "cursor" in response.json["fields"], response.json
        return response.json

    refused(f"{url}&cursor={cursor[:-3]}")  # truncated
    refused(f"{url}&cursor={cursor[:10]}x{cursor[11:]}")  # a character changed
    refused(f"{url}&cursor=bm90IGpzb24")  # base64 of "not json"
    refused(f"{url}&cursor={b64json([1, 2])}")
    refused(f"{url}&cursor={b64json({**decoded, 'id': 'x'})}")
    refused(f"{url}&cursor={b64json({**decoded, 'id': 2**70})}")
    refused(f"{url}&cursor={b64json({**decoded, 'created_us': -(2**80)})}")
    refused(f"{url}&cursor={b64json({**decoded, 'extra': 1})}")
    refused(f"/orders?date=2026-05-02&tz=UTC&cursor={cursor}")  # another day
    refused(f"/orders?date=2026-05-01&tz=Europe/Paris&cursor={cursor}")  # another tz
    outside = decoded["created_us"] + 86_400 * 10**6
    refused(f"{url}&cursor={b64json({**decoded, 'created_us': outside})}")
    product_cursor = b64json({"after_id": 1})
    refused(f"{url}&cursor={product_cursor}")


@pytest.mark.parametrize(
    ("query", "fields"),
    [
        ("", {"date"}),
        ("date=2026-02-30", {"date"}),
        ("date=20261120", {"date"}),
        ("date=2026-11-20T00:00", {"date"}),
        ("date=0001-01-01", {"date"}),
        ("date=%D9%A2%D9%A0%D9%A2%D9%A6-11-20", {"date"}),  # Arabic-Indic digits
        ("date=2026-11-20&tz=Mars/Olympus", {"tz"}),
        ("date=2026-11-20&tz=../../etc/passwd", {"tz"}),
        ("date=2026-11-20&tz=", {"tz"}),
        ("date=2026-11-20&limit=0", {"limit"}),
        ("date=2026-11-20&limit=1001", {"limit"}),
        ("date=2026-11-20&limit=ten", {"limit"}),
        ("date=2026-11-20&date=2026-11-21", {"date"}),
        ("date=2026-11-20&customer=user-alice", {"customer"}),
    ],
)
def test_bad_listing_parameters(client, auth, query, fields):
    response = client.get(f"/orders?{query}", headers=auth)
    assert response.status_code == 400
    assert response.json["error"] == "invalid_request" and set(response.json["fields"]) == fields


@pytest.mark.parametrize(("method", "needs"), [("get", "read:orders"), ("post", "write:orders")])
def test_order_routes_need_their_scope(client, bearer, method, needs):
    others = " ".join(
        s for s in ("read:products", "write:products", "read:orders", "write:orders") if s != needs
    )
    response = getattr(client, method)("/orders?date=2026-11-20", json={}, headers=bearer(others))
    assert response.status_code == 403
    assert f'scope="{needs}"' in response.headers["WWW-Authenticate"]
