"""Claims the API stores are bounded by their column; refusals are logged with the client id; and
a route names its scope once, in ``require_oauth``, which /openapi.json reads.

The bound is checked on SQLite and PostgreSQL: PostgreSQL enforces VARCHAR(128), SQLite does not.
"""

from __future__ import annotations

import logging
import uuid

import pytest

from shopping_api.auth import MAX_ID_LENGTH, require_oauth
from shopping_api.models import Order, Product
from shopping_api.validation import operation
from tests.conftest import ALL_SCOPES

LONG = "a" * 300


def product() -> dict:
    return {"sku": f"SKU-{uuid.uuid4().hex[:8]}", "name": "Mug", "price": 1250, "currency": "EUR"}


def test_the_bound_is_the_column_width():
    assert MAX_ID_LENGTH == Product.__table__.c.created_by.type.length == 128
    assert Order.__table__.c.created_by.type.length == MAX_ID_LENGTH


@pytest.mark.parametrize("claim", ["sub", "client_id"])
@pytest.mark.parametrize("length", [MAX_ID_LENGTH + 1, 300, 10_000 // 4])
def test_a_claim_longer_than_its_column_is_refused(client, make_token, claim, length, caplog):
    caplog.set_level(logging.DEBUG)
    value = "x" * (length - 3) + "end"
    headers = {"Authorization": f"Bearer {make_token(ALL_SCOPES, **{claim: value})}"}
    for method, path, body in (("post", "/products", product()), ("get", "/products", None)):
        response = getattr(client, method)(path, json=body, headers=headers)
        assert response.status_code == 401, response.get_json()
        assert response.get_json()["error"] == "invalid_token"
        assert claim in response.get_json()["error_description"]
        assert response.headers["WWW-Authenticate"].startswith(
            'Bearer realm="shopping-api", error="invalid_token"'
        )
    assert "x" * 40 not in caplog.text, "the claim value reached a log"
    assert f"claim {claim} too long" in caplog.text


def test_a_claim_as_long_as_its_column_is_stored(client, make_token):
    """Both databases (PostgreSQL enforces the width): the longest accepted value fits."""
    app_id = "m" * MAX_ID_LENGTH
    token = make_token(ALL_SCOPES, sub=app_id, client_id=app_id)
    response = client.post("/products", json=product(), headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["created_by"] == app_id
    order = {"customer_id": "user-1", "items": [{"product_id": response.get_json()["id"], "quantity": 1}]}
    response = client.post("/orders", json=order, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 201, response.get_json()


def test_refusals_are_logged_with_reason_and_client_id(client, make_token, caplog):
    caplog.set_level(logging.INFO, logger="shopping_api")
    expired = make_token("read:products", client_id="app-logged", iat=1_000_000_000, exp=1_000_003_600)
    assert client.get("/products", headers={"Authorization": f"Bearer {expired}"}).status_code == 401
    scopeless = make_token("read:orders", client_id="app-logged")
    assert client.get("/products", headers={"Authorization": f"Bearer {scopeless}"}).status_code == 403
    lines = [
        r.getMessage() for r in caplog.records if r.levelno == logging.INFO and "rejected" in r.getMessage()
    ]
    assert lines == [
        "rejected access token: expired (client app-logged)",
        "rejected access token: lacks scope read:products (client app-logged)",
    ]
    for part in (expired + scopeless).split("."):
        assert part not in caplog.text


# -- one declaration per scope ------------------------------------------------------------------


def test_the_document_reads_the_scope_from_require_oauth(app, client, bearer):
    """A route that names its scope only in ``require_oauth`` is documented with that scope."""

    @require_oauth("read:orders")
    @operation("Which app is calling?")
    def whoami():
        return {"sub": "ok"}

    app.add_url_rule("/whoami", "whoami", whoami)
    entry = client.get("/openapi.json").get_json()["paths"]["/whoami"]["get"]
    assert entry["security"] == [{"bearer": ["read:orders"]}]
    assert {"401", "403"} <= entry["responses"].keys()
    # ...and it is what the route enforces.
    assert client.get("/whoami", headers=bearer("read:products")).status_code == 403
    assert client.get("/whoami", headers=bearer("read:orders")).status_code == 200


def test_operation_no_longer_takes_a_scope():
    with pytest.raises(TypeError):
        operation("a second place to name the scope", scope="read:orders")


def test_the_context_manager_form_checks_the_scope(app, bearer):
    """Authlib's ``with require_oauth.acquire(scope)`` still works, with the same answers."""

    def whoami():
        with require_oauth.acquire("read:orders") as token:
            return {"sub": token["sub"]}

    app.add_url_rule("/whoami", "whoami", whoami)
    client = app.test_client()
    assert client.get("/whoami", headers=bearer("read:orders")).status_code == 200
    denied = client.get("/whoami", headers=bearer("read:products"))
    assert denied.status_code == 403
    assert denied.headers["WWW-Authenticate"].endswith('scope="read:orders"')


def test_the_check_reads_the_header_without_copying_the_request(client, bearer, monkeypatch):
    """Authlib's request copy (most of what a cached token used to cost) is off the path."""
    import authlib.integrations.flask_oauth2.resource_protector as protector

    def refuse(*_args, **_kwargs):
        raise AssertionError("the token check built Authlib's request object")

    monkeypatch.setattr(protector, "FlaskJsonRequest", refuse)
    headers = bearer("read:products")
    for _ in range(2):  # the first request verifies the token, the second finds it in the cache
        assert client.get("/products", headers=headers).status_code == 200
