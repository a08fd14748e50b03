"""/openapi.json describes exactly the routes the app serves, with the scopes they enforce."""

from __future__ import annotations

import pytest
from openapi_spec_validator import validate

from shopping_api.openapi import operations
from tests.api.fixtures import shared_jwks_server, sqlite_database_url  # noqa: F401 (fixtures)

ALL_SCOPES = ("read:products", "write:products", "read:orders", "write:orders")


@pytest.fixture
def document(client):
    response = client.get("/openapi.json")  # no token needed
    assert response.status_code == 200
    return response.json


def test_document_is_valid_openapi_3_1(document):
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_every_route_is_described_and_nothing_else(app, document):
    served = {(path, method) for path, method, _endpoint, _op in operations(app)}
    described = {(path, method) for path, entries in document["paths"].items() for method in entries}
    assert served == described
    assert {
        ("/products", "get"),
        ("/products/{product_id}", "patch"),
        ("/orders", "post"),
        ("/healthz", "get"),
        ("/openapi.json", "get"),
    } <= described
    assert all(op is not None for *_route, op in operations(app)), "a route lacks @operation"


def test_bodies_and_parameters_come_from_the_models(document):
    schemas = document["components"]["schemas"]
    order_body = document["paths"]["/orders"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert order_body == {"$ref": "#/components/schemas/OrderCreate"}
    assert schemas["OrderLine"]["properties"]["quantity"]["maximum"] == 10_000
    assert schemas["ProductCreate"]["additionalProperties"] is False
    listing = {p["name"]: p for p in document["paths"]["/orders"]["get"]["parameters"]}
    assert listing["date"]["required"] and not listing["tz"]["required"]
    assert listing["limit"]["schema"]["maximum"] == 1000
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_documented_scopes_are_the_enforced_ones(app, client, bearer, document):
    """For each protected operation: a token with every other scope gets 403 naming the documented one."""
    checked = 0
    served = {(path, method) for path, method, _endpoint, _op in operations(app)}
    for path, entries in document["paths"].items():
        url = path.replace("{product_id}", "1")
        for method, entry in entries.items():
            if not entry["security"]:
                assert getattr(client, method)(url).status_code == 200, (method, path)
                continue
            [requirement] = entry["security"]
            [scope] = requirement["bearer"]
            assert "401" in entry["responses"] and "403" in entry["responses"]
            others = " ".join(s for s in ALL_SCOPES if s != scope)
            response = getattr(client, method)(url, json={}, headers=bearer(others))
            assert response.status_code == 403, (method, path)
            assert f'scope="{scope}"' in response.headers["WWW-Authenticate"]
            assert getattr(client, method)(url, json={}).status_code == 401
            checked += 1
    # Every served route was probed (a route added by following the README counts too).
    open_routes = {("/healthz", "get"), ("/readyz", "get"), ("/openapi.json", "get")}
    assert checked == len(served - open_routes) >= 8
