"""Bodies that are not what the API takes: wrong media type, not JSON, too large, wrong shape."""

from __future__ import annotations

import json

import pytest

from tests.api.conftest import product_body
from tests.api.fixtures import shared_jwks_server, sqlite_database_url  # noqa: F401 (fixtures)

WRITES = [("post", "/products"), ("post", "/orders"), ("put", "/products/{id}"), ("patch", "/products/{id}")]


@pytest.fixture
def write_routes(new_product):
    product = new_product()
    return [(method, path.format(id=product["id"])) for method, path in WRITES]


@pytest.mark.parametrize(
    ("content_type", "data", "status", "error"),
    [
        (None, b'{"sku": "A"}', 415, "unsupported_media_type"),
        ("text/plain", b'{"sku": "A"}', 415, "unsupported_media_type"),
        ("application/x-www-form-urlencoded", b"sku=A", 415, "unsupported_media_type"),
        ("application/json", b"", 400, "invalid_json"),
        ("application/json", b"{", 400, "invalid_json"),
        ("application/json", b"{'sku': 'A'}", 400, "invalid_json"),
        ("application/json", b'{"sku": "\xff"}', 400, "invalid_json"),
        ("application/json", b'{"sku": "\\ud800"}', 400, "invalid_json"),
        ("application/json", b"[" * 10_000 + b"]" * 10_000, 400, "invalid_json"),
        ("application/json", b"[]", 422, "validation_failed"),
        ("application/json", b"null", 422, "validation_failed"),
        ("application/json", b'"text"', 422, "validation_failed"),
    ],
)
def test_bodies_that_are_not_json_objects(client, auth, write_routes, content_type, data, status, error):
    headers = {**auth, "If-Match": "*"}
    if content_type:
        headers["Content-Type"] = content_type
    for method, path in write_routes:
        response = getattr(client, method)(path, data=data, headers=headers)
        assert response.status_code == status, (method, path, response.json)
        assert response.json["error"] == error
        if status == 422:
            assert response.json["fields"] == {"body": "Input should be an object"}


def test_body_size_limit(client, auth, write_routes):
    huge = json.dumps(product_body(description="x" * 70_000)).encode()
    for method, path in write_routes:
        response = getattr(client, method)(
            path, data=huge, headers={**auth, "If-Match": "*"}, content_type="application/json"
        )
        assert response.status_code == 413, (method, path)
        assert response.json["error"] == "request_entity_too_large"


def test_merge_patch_media_type_is_accepted(client, auth, new_product):
    product = new_product()
    response = client.patch(
        f"/products/{product['id']}",
        data=b'{"name": "Renamed"}',
        headers={**auth, "If-Match": '"1"', "Content-Type": "application/merge-patch+json"},
    )
    assert response.status_code == 200 and response.json["name"] == "Renamed"


@pytest.mark.parametrize(
    ("fields", "bad"),
    [
        ({"sku": "a b"}, "sku"),
        ({"sku": "x" * 65}, "sku"),
        ({"sku": "-lead"}, "sku"),
        ({"name": ""}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": "tab\there"}, "name"),
        ({"name": "nul\x00"}, "name"),
        ({"name": " padded "}, "name"),
        ({"description": "x" * 2001}, "description"),
        ({"description": "nul\x00"}, "description"),
        ({"currency": "usd"}, "currency"),
        ({"currency": "US"}, "currency"),
        ({"currency": "\uff35\uff33\uff24"}, "currency"),  # fullwidth USD
        ({"price": 2**63}, "price"),
        ({"price": 1e400}, "price"),
        ({"price": None}, "price"),
        ({"price": [1]}, "price"),
        ({"sku": 12}, "sku"),
    ],
)
def test_each_bad_product_field_is_named(client, auth, fields, bad):
    response = client.post("/products", json=product_body(**fields), headers=auth)
    assert response.status_code == 422, response.json
    assert response.json["error"] == "validation_failed" and set(response.json["fields"]) == {bad}


def test_every_bad_field_is_reported_at_once(client, auth):
    response = client.post("/products", json={"sku": "", "price": -5, "currency": 1, "x": 1}, headers=auth)
    assert response.status_code == 422
    assert response.json["fields"] == {
        "sku": "String should match pattern '^[A-Za-z0-9][A-Za-z0-9._\\-]{0,63}$'",
        "name": "is required",
        "price": "Input should be greater than or equal to 0",
        "currency": "Input should be a valid string",
        "x": "is not a known field",
    }


def test_errors_never_echo_the_input(client, auth):
    secret = "s3cr3t-VALUE-that-must-not-come-back"
    response = client.post("/products", json=product_body(currency=secret, sku=secret + " !"), headers=auth)
    assert response.status_code == 422 and secret not in response.get_data(as_text=True)


def test_unknown_routes_and_methods_answer_json(client, auth):
    missing = client.get("/nowhere", headers=auth)
    assert missing.status_code == 404 and missing.json["error"] == "not_found"
    wrong = client.put("/orders", json={}, headers=auth)
    assert wrong.status_code == 405 and "GET" in wrong.headers["Allow"] and wrong.is_json
