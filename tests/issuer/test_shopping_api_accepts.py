"""The shopping API's own validator accepts this issuer's tokens as they are, for its audience only."""

from __future__ import annotations

import pytest

from .conftest import ADMIN, MANAGEMENT, SHOPPING, STATS_WORKER

shopping_api = pytest.importorskip("shopping_api")


@pytest.fixture
def api_client(issuer, tmp_path):
    app = shopping_api.create_app(
        {
            "LOGTO_ISSUER": issuer.issuer,
            "LOGTO_JWKS_URI": f"{issuer.base_url}/oidc/jwks",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'shop.sqlite'}",
            "ENV_FILE": None,
            "TESTING": True,
        }
    )
    result = app.test_cli_runner().invoke(args=["init-db"])
    assert result.exit_code == 0, result.output
    return app.test_client()


def _bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_token_from_the_issuer_is_accepted(issuer, api_client):
    token = issuer.token(STATS_WORKER, SHOPPING, "read:products read:orders")
    response = api_client.get("/products", headers=_bearer(token))
    assert response.status_code == 200
    assert response.get_json()["products"] == []


def test_created_by_is_the_calling_app(issuer, api_client):
    token = issuer.token(ADMIN, SHOPPING, "write:products read:products")
    response = api_client.post(
        "/products",
        headers=_bearer(token),
        json={"sku": "SKU-1", "name": "Mug", "description": "A mug", "price": 1299, "currency": "USD"},
    )
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["created_by"] == ADMIN[0]


def test_token_for_another_resource_is_rejected(issuer, api_client):
    token = issuer.token(STATS_WORKER, MANAGEMENT, "all")
    response = api_client.get("/products", headers=_bearer(token))
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_token"


def test_scope_not_granted_is_forbidden(issuer, api_client):
    # The stats worker asks for write:products; the issuer drops it, the API then answers 403.
    token = issuer.token(STATS_WORKER, SHOPPING, "read:products write:products")
    response = api_client.post(
        "/products",
        headers=_bearer(token),
        json={"sku": "SKU-2", "name": "Cup", "description": "", "price": 500, "currency": "USD"},
    )
    assert response.status_code == 403
    assert response.get_json()["error"] == "insufficient_scope"
