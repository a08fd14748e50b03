"""/readyz, and an API whose tables were never created: 503 naming the fix, never 500 or "retry"."""

from __future__ import annotations

import time

import pytest

from shopping_api import create_app
from tests.support import free_port

INIT_DB = "flask --app shopping_api init-db"
PRODUCT = {"sku": "MUG-1", "name": "Mug", "price": 100, "currency": "USD"}
#: Every route that needs the tables, called as a well-behaved client would.
DATABASE_ROUTES = [
    ("get", "/products", None),
    ("get", "/products/1", None),
    ("post", "/products", PRODUCT),
    ("put", "/products/1", PRODUCT),
    ("patch", "/products/1", {"price": 5}),
    ("delete", "/products/1", None),
    ("get", "/orders?date=2026-11-20", None),
    ("post", "/orders", {"customer_id": "user-alice", "items": [{"product_id": 1, "quantity": 1}]}),
]


@pytest.fixture
def bare_app(api_settings):
    """The API on an empty database: init-db was never run."""
    return create_app(api_settings)


def test_healthz_stays_up_but_every_route_names_init_db(bare_app, bearer):
    client = bare_app.test_client()
    assert client.get("/healthz").status_code == 200
    headers = {**bearer(), "If-Match": "*"}
    for method, path, body in DATABASE_ROUTES:
        response = getattr(client, method)(path, json=body, headers=headers)
        assert response.status_code == 503, (method, path, response.json)
        assert response.json["error"] == "schema_missing" and INIT_DB in response.json["error_description"]
        assert "Retry-After" not in response.headers  # waiting does not help
    ready = client.get("/readyz")
    assert ready.status_code == 503 and INIT_DB in ready.json["error_description"]


def test_ready_once_the_schema_exists_and_keys_are_loaded(bare_app, jwks_server):
    client = bare_app.test_client()
    assert client.get("/readyz").status_code == 503
    assert bare_app.test_cli_runner().invoke(args=["init-db"]).exit_code == 0
    response = client.get("/readyz")
    assert response.status_code == 200 and response.json == {"status": "ready"}
    assert jwks_server.fetch_count == 1  # the first check loaded the keys; later ones reuse them
    client.get("/readyz")
    assert jwks_server.fetch_count == 1


def test_not_ready_without_signing_keys(api_settings, jwks_server):
    jwks_server.stop()  # before the app starts: it cannot load its keys
    app = create_app(api_settings)
    assert app.test_cli_runner().invoke(args=["init-db"]).exit_code == 0
    response = app.test_client().get("/readyz")
    assert response.status_code == 503 and response.json["error"] == "not_ready"
    assert response.json["error_description"] == "no signing key loaded yet from the issuer's JWKS"
    assert response.headers["Retry-After"] == "5"


def test_not_ready_when_the_database_does_not_answer(api_settings):
    nowhere = f"postgresql+psycopg://shop@127.0.0.1:{free_port()}/shop"
    response = create_app({**api_settings, "DATABASE_URL": nowhere}).test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["error_description"].startswith("the database does not answer")


def test_an_api_whose_issuer_was_down_at_start_becomes_ready_without_traffic(api_settings, jwks_server):
    """Readiness holds traffic back, so it must not wait for a token to fetch the keys."""
    jwks_server.mode = "error"  # the issuer answers 500 while the API starts
    app = create_app({**api_settings, "JWKS_REFETCH_COOLDOWN_SECONDS": 1})
    assert app.test_cli_runner().invoke(args=["init-db"]).exit_code == 0
    client = app.test_client()
    assert client.get("/readyz").status_code == 503
    jwks_server.mode = "ok"
    time.sleep(1.1)  # the back-off after a failed fetch (the cooldown, when shorter than 5 s)
    assert client.get("/readyz").status_code == 200


def test_readiness_probes_of_an_empty_key_set_do_not_each_fetch_it(api_settings, jwks_server):
    jwks_server.publish()  # the issuer answers, with no keys
    app = create_app(api_settings)
    assert app.test_cli_runner().invoke(args=["init-db"]).exit_code == 0
    client = app.test_client()
    before = jwks_server.fetch_count
    for _ in range(20):
        assert client.get("/readyz").status_code == 503
    assert jwks_server.fetch_count - before <= 1  # within the back-off: at most one more fetch
