"""/openapi.json describes exactly the routes the app serves, with the scopes they enforce."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
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


def test_if_match_is_declared_as_enforced(document, client, auth, new_product):
    product = new_product()
    url = f"/products/{product['id']}"
    for method in ("put", "patch", "delete"):
        entry = document["paths"]["/products/{product_id}"][method]
        [header] = [p for p in entry["parameters"] if p["in"] == "header"]
        assert header["name"] == "If-Match" and "412" in entry["responses"]
        body = {"price": 5} if method == "patch" else {**product, "id": None}
        body = {k: v for k, v in body.items() if k in ("sku", "name", "description", "price", "currency")}
        enforced = getattr(client, method)(url, json=body, headers=auth).status_code == 428
        # Required in the document exactly where a request without it gets 428.
        assert header["required"] is enforced is ("428" in entry["responses"]), method


def test_patch_fields_are_not_nullable(document, client, auth, new_product):
    patch = document["components"]["schemas"]["ProductPatch"]
    for name, prop in patch["properties"].items():
        assert "null" not in str(prop) and "anyOf" not in prop and "default" not in prop, name
    assert not patch.get("required")
    product = new_product()
    response = client.patch(
        f"/products/{product['id']}", json={"name": None}, headers={**auth, "If-Match": '"1"'}
    )
    assert response.status_code == 422 and "must not be null" in response.json["fields"]["name"]


def test_every_route_declares_what_the_server_may_answer(document):
    for path, entries in document["paths"].items():
        for method, entry in entries.items():
            responses = entry["responses"]
            assert {"400", "414", "431"} <= responses.keys(), (method, path)
            if entry["security"]:
                assert {"401", "403", "503"} <= responses.keys(), (method, path)
            if "requestBody" in entry:
                assert {"413", "415", "422"} <= responses.keys(), (method, path)
    assert "503" in document["paths"]["/readyz"]["get"]["responses"]


# Characters around each boundary of the string rules: controls, Unicode spaces, ordinary text.
edge_text = st.text(
    alphabet=st.sampled_from(
        [
            "a",
            "Z",
            "é",
            "😀",
            " ",
            "\t",
            "\n",
            "\x00",
            "\x1b",
            "\x1f",
            "\x7f",
            "\x85",
            "\xa0",
            "\u2003",
            "\u2028",
            "\u3000",
            "\ufeff",
            "\u200b",
        ]
    ),
    max_size=6,
)


@given(value=edge_text)
@settings(max_examples=300, derandomize=True)
def test_documented_string_patterns_accept_exactly_what_the_api_accepts(value):
    from pydantic import ValidationError

    from shopping_api.schemas import NO_NUL_PATTERN, SINGLE_LINE_PATTERN, ProductPatch

    for name, pattern in (("name", SINGLE_LINE_PATTERN), ("description", NO_NUL_PATTERN)):
        try:
            ProductPatch.model_validate({name: value})
            accepted = True
        except ValidationError:
            accepted = False
        # ECMA-262's "$" is the end of the text; Python's also matches before a final newline.
        ecma_match = re.fullmatch(pattern.removeprefix("^").removesuffix("$"), value) is not None
        documented = ecma_match and (name != "name" or len(value) >= 1)
        assert accepted is documented, (name, value)
