"""Products: CRUD, ETag/If-Match, SKU conflicts, pagination, and what each scope may do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shopping_api.schemas import ProductOut, ProductPage
from tests.api.conftest import product_body, walk
from tests.api.fixtures import shared_jwks_server  # noqa: F401 (fixture)
from tests.conftest import APP_ID


def parse_ts(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    assert moment.utcoffset() == timedelta(0) and value.endswith("+00:00")
    return moment


def test_create_read_and_shape(client, auth):
    before = datetime.now(UTC)
    created = client.post("/products", json=product_body(sku="MUG-1", price=1999), headers=auth)
    assert created.status_code == 201
    assert created.headers["ETag"] == '"1"'
    body = created.json
    ProductOut.model_validate(body)
    assert created.headers["Location"] == f"/products/{body['id']}"
    assert body["sku"] == "MUG-1" and body["price"] == 1999 and body["currency"] == "USD"
    assert body["created_by"] == APP_ID  # the token's sub: the calling M2M app
    assert before <= parse_ts(body["created_at"]) == parse_ts(body["updated_at"]) <= datetime.now(UTC)

    read = client.get(created.headers["Location"], headers=auth)
    assert read.status_code == 200 and read.json == body and read.headers["ETag"] == '"1"'


def test_money_is_exact_at_the_bounds(client, auth, new_product):
    product = new_product(price=10**12, currency="JPY")
    assert product["price"] == 10**12 and isinstance(product["price"], int)
    assert new_product(price=0)["price"] == 0
    for bad in (19.99, "1999", 10**12 + 1, 1e12 + 1, -1, True):
        response = client.post("/products", json=product_body(price=bad), headers=auth)
        assert response.status_code == 422 and set(response.json["fields"]) == {"price"}, bad
    # JSON has one number type: 1999.0 is the integer 1999 (as JSON Schema's "integer" says).
    assert new_product(price=1999.0)["price"] == 1999


def test_patch_needs_if_match_and_bumps_the_etag(client, auth, new_product):
    product = new_product(price=1000)
    url = f"/products/{product['id']}"

    missing = client.patch(url, json={"price": 1100}, headers=auth)
    assert missing.status_code == 428 and missing.json["error"] == "precondition_required"

    first = client.patch(url, json={"price": 1100}, headers={**auth, "If-Match": '"1"'})
    assert first.status_code == 200 and first.headers["ETag"] == '"2"'
    assert first.json["price"] == 1100 and first.json["name"] == product["name"]
    assert parse_ts(first.json["updated_at"]) > parse_ts(product["updated_at"])

    stale = client.patch(url, json={"price": 1200}, headers={**auth, "If-Match": '"1"'})
    assert stale.status_code == 412 and stale.headers["ETag"] == '"2"'
    assert client.get(url, headers=auth).json["price"] == 1100  # the stale write changed nothing

    weak = client.patch(url, json={"price": 1200}, headers={**auth, "If-Match": 'W/"2"'})
    assert weak.status_code == 412  # If-Match uses the strong comparison (RFC 9110 13.1.1)
    star = client.patch(url, json={"price": 1300}, headers={**auth, "If-Match": "*"})
    assert star.status_code == 200 and star.headers["ETag"] == '"3"'


def test_put_replaces_every_field(client, auth, new_product):
    product = new_product(description="old")
    url = f"/products/{product['id']}"
    replacement = {"sku": "NEW-SKU", "name": "Teapot", "price": 4500, "currency": "EUR"}
    response = client.put(url, json=replacement, headers={**auth, "If-Match": '"1"'})
    assert response.status_code == 200 and response.headers["ETag"] == '"2"'
    assert {k: response.json[k] for k in replacement} == replacement
    assert response.json["description"] == ""  # omitted in a PUT means the default
    partial = client.put(url, json={"name": "x"}, headers={**auth, "If-Match": '"2"'})
    assert partial.status_code == 422
    assert set(partial.json["fields"]) == {"sku", "price", "currency"}


def test_unchanged_patch_keeps_the_version(client, auth, new_product):
    product = new_product(price=700)
    response = client.patch(
        f"/products/{product['id']}", json={"price": 700}, headers={**auth, "If-Match": '"1"'}
    )
    assert response.status_code == 200 and response.headers["ETag"] == '"1"'
    assert response.json["updated_at"] == product["updated_at"]


def test_patch_rejects_null_and_unknown_fields(client, auth, new_product):
    url = f"/products/{new_product()['id']}"
    response = client.patch(url, json={"name": None, "colour": "red"}, headers={**auth, "If-Match": '"1"'})
    assert response.status_code == 422
    assert set(response.json["fields"]) == {"name", "colour"}


def test_sku_is_unique(client, auth, new_product):
    first = new_product(sku="DUP-1")
    clash = client.post("/products", json=product_body(sku="DUP-1"), headers=auth)
    assert clash.status_code == 409 and clash.json["fields"] == {"sku": "is already used by another product"}
    other = new_product(sku="DUP-2")
    renamed = client.patch(
        f"/products/{other['id']}", json={"sku": "DUP-1"}, headers={**auth, "If-Match": '"1"'}
    )
    assert renamed.status_code == 409 and "DUP-1" in renamed.json["error_description"]
    # The failed write rolled back: the product is unchanged and still writable.
    assert client.get(f"/products/{other['id']}", headers=auth).json["sku"] == "DUP-2"
    assert client.get(f"/products/{first['id']}", headers=auth).status_code == 200


def test_delete(client, auth, new_product):
    product = new_product()
    url = f"/products/{product['id']}"
    assert client.delete(url, headers={**auth, "If-Match": '"7"'}).status_code == 412
    response = client.delete(url, headers=auth)
    assert response.status_code == 204 and response.data == b""
    assert client.get(url, headers=auth).status_code == 404
    assert client.delete(url, headers=auth).status_code == 404


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_unknown_and_invalid_ids(client, auth, method):
    body = product_body()
    headers = {**auth, "If-Match": "*"}
    missing = getattr(client, method)("/products/424242", json=body, headers=headers)
    assert missing.status_code == 404 and missing.json["error"] == "not_found"
    for bad in ("abc", "0", "-1", "1.5", str(2**31), "9" * 40):
        response = getattr(client, method)(f"/products/{bad}", json=body, headers=headers)
        assert response.status_code == 400, bad
        assert set(response.json["fields"]) == {"product_id"}


def test_list_walks_every_page_once(client, auth, new_product):
    ids = [new_product()["id"] for _ in range(12)]
    products, pages = walk(client, "/products", auth, "products", limit=5)
    assert [p["id"] for p in products] == ids and pages == 3
    first = client.get("/products?limit=5", headers=auth).json
    ProductPage.model_validate(first)
    everything = client.get("/products?limit=1000", headers=auth).json
    assert len(everything["products"]) == 12 and everything["next_cursor"] is None


def test_list_bad_parameters(client, auth, new_product):
    new_product()
    new_product()
    cursor = client.get("/products?limit=1", headers=auth).json["next_cursor"]
    for query, field in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=x", "limit"),
        ("cursor=" + cursor[:-2], "cursor"),
        ("cursor=" + cursor + "AA", "cursor"),
        ("cursor=%2F%2F", "cursor"),
        ("colour=red", "colour"),
        ("limit=1&limit=2", "limit"),
    ]:
        response = client.get(f"/products?{query}", headers=auth)
        assert response.status_code == 400, query
        assert response.json["error"] == "invalid_request" and field in response.json["fields"], query


@pytest.mark.parametrize(
    ("method", "path", "needs"),
    [
        ("get", "/products", "read:products"),
        ("get", "/products/1", "read:products"),
        ("post", "/products", "write:products"),
        ("put", "/products/1", "write:products"),
        ("patch", "/products/1", "write:products"),
        ("delete", "/products/1", "write:products"),
    ],
)
def test_each_route_needs_its_scope(client, bearer, method, path, needs):
    others = " ".join(
        s for s in ("read:products", "write:products", "read:orders", "write:orders") if s != needs
    )
    response = getattr(client, method)(path, json=product_body(), headers=bearer(others))
    assert response.status_code == 403
    assert f'scope="{needs}"' in response.headers["WWW-Authenticate"]
    assert getattr(client, method)(path, json=product_body()).status_code == 401
