"""Property: no body, query string or path value makes the API answer 5xx (or anything but JSON).

Hypothesis generates arbitrary JSON (and some raw bytes) shaped loosely like the real inputs, so
the examples reach deep into validation and, when they pass it, into the database.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.fixtures import shared_jwks_server  # noqa: F401 (fixture)

FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.sampled_from(["USD", "JPY", "user-alice", "SKU-1", "", "\x00", "1", "1e3", " 5 "])
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


def loosely(keys: list[str]) -> st.SearchStrategy[dict]:
    """Objects with some of ``keys`` (any values) and sometimes a stray key."""
    return st.fixed_dictionaries({}, optional=dict.fromkeys(keys, json_values)) | st.dictionaries(
        st.sampled_from(keys) | st.text(max_size=8), json_values, max_size=6
    )


# Nearly valid products: these get past validation and exercise the database with odd text.
near_products = st.fixed_dictionaries(
    {
        "sku": st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,63}", fullmatch=True) | st.text(max_size=70),
        "name": st.text(min_size=1, max_size=210),
        "price": st.integers(-1, 10**12 + 1),
        "currency": st.sampled_from(["USD", "EUR", "JPY"]) | st.from_regex("[A-Z]{3}", fullmatch=True),
    },
    optional={"description": st.text(max_size=300)},
)
product_bodies = loosely(["sku", "name", "description", "price", "currency"]) | near_products
order_lines = st.fixed_dictionaries(
    {},
    optional={
        "product_id": st.integers(-3, 2**64) | json_values,
        "quantity": st.integers(-3, 20_000) | json_values,
    },
)
order_bodies = st.fixed_dictionaries(
    {}, optional={"customer_id": json_values, "items": st.lists(order_lines, max_size=5) | json_values}
) | loosely(["customer_id", "items"])
query_values = st.text(max_size=40) | st.sampled_from(
    ["2026-11-20", "UTC", "Europe/Paris", "1000", "0", "-1", "eyJhIjoxfQ", "%00", "9" * 30]
)
queries = st.dictionaries(
    st.sampled_from(["date", "tz", "limit", "cursor"]) | st.text(max_size=6), query_values, max_size=5
)


def assert_handled(response) -> None:
    assert response.status_code < 500, response.get_data(as_text=True)
    if response.status_code != 204:
        assert response.is_json, response.get_data(as_text=True)[:200]


@pytest.fixture
def target(client, auth, new_product):
    """A client, full-scope headers, and a product (id 1..) for orders and writes to hit."""
    products = [new_product(currency="USD", price=10**12), new_product(currency="EUR")]
    return client, auth, products


def test_product_writes_never_fail(target):
    client, auth, products = target
    statuses = set()

    @FUZZ
    @given(
        body=product_bodies,
        method=st.sampled_from(["post", "put", "patch"]),
        if_match=st.sampled_from(["*", '"1"', 'W/"1"', "garbage", ""]),
    )
    def write(body, method, if_match):
        url = "/products" if method == "post" else f"/products/{products[0]['id']}"
        response = getattr(client, method)(url, json=body, headers={**auth, "If-Match": if_match})
        assert_handled(response)
        statuses.add(response.status_code)

    write()
    assert {200, 201, 412, 422} <= statuses  # the examples reached every outcome, not just 422


@FUZZ
@given(body=order_bodies)
def test_order_writes_never_fail(target, body):
    client, auth, products = target
    if isinstance(body.get("items"), list) and body["items"] and isinstance(body["items"][0], dict):
        body["items"][0].setdefault("product_id", products[0]["id"])  # sometimes a real product
    assert_handled(client.post("/orders", json=body, headers=auth))


@FUZZ
@given(
    data=st.binary(max_size=200),
    content_type=st.sampled_from(
        [
            "application/json",
            "application/merge-patch+json",
            "text/plain",
            "application/json; charset=latin-1",
            "",
        ]
    ),
)
def test_raw_bodies_never_fail(target, data, content_type):
    client, auth, _products = target
    for url in ("/products", "/orders"):
        assert_handled(client.post(url, data=data, headers={**auth, "Content-Type": content_type}))


@FUZZ
@given(query=queries)
def test_queries_never_fail(target, query):
    client, auth, _products = target
    for url in ("/orders", "/products"):
        assert_handled(client.get(url, query_string=query, headers=auth))


@FUZZ
@given(value=st.text(min_size=1, max_size=40), method=st.sampled_from(["get", "put", "patch", "delete"]))
def test_path_values_never_fail(target, value, method):
    client, auth, _products = target
    response = getattr(client, method)(
        "/products/" + quote(value, safe=""), json={"name": "x"}, headers={**auth, "If-Match": "*"}
    )
    assert_handled(response)
