"""The stats worker's token client against oidc-provider, the engine inside Logto."""

from __future__ import annotations

import base64
import json
import logging

import pytest

from logto_m2m.http import make_session
from stats_worker.token_client import TokenClient, TokenRequestError

from .conftest import SHOPPING_API, STATS_APP, app_secret

pytestmark = pytest.mark.node


def claims_of(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


@pytest.fixture
def session():
    with make_session(allowed_methods=("POST",)) as session:
        yield session


@pytest.fixture
def client(oidc_provider, session):
    return TokenClient(oidc_provider.token_endpoint, STATS_APP, app_secret(STATS_APP), session=session)


def test_token_request_carries_basic_auth_resource_and_scope(oidc_provider, client):
    token = client.get_token(SHOPPING_API, ["read:orders", "read:products"])
    assert oidc_provider.stats()["last_grant"] == {
        "client_id": STATS_APP,
        "client_auth": "client_secret_basic",
        "grant_type": "client_credentials",
        "resource": SHOPPING_API,
        "scope": "read:orders read:products",
    }
    claims = claims_of(token)
    assert claims["aud"] == SHOPPING_API
    assert claims["sub"] == STATS_APP
    assert set(claims["scope"].split()) == {"read:orders", "read:products"}


def test_token_is_reused_until_it_runs_out(oidc_provider, client):
    first = client.get_token(SHOPPING_API, "read:orders")
    requests_so_far = oidc_provider.stats()["token_requests"]
    assert client.get_token(SHOPPING_API, "read:orders") == first
    assert oidc_provider.stats()["token_requests"] == requests_so_far
    client.invalidate(SHOPPING_API, "read:orders")
    assert client.get_token(SHOPPING_API, "read:orders") != first
    assert oidc_provider.stats()["token_requests"] == requests_so_far + 1


def test_dropped_scope_is_named_in_a_warning(oidc_provider, client, caplog):
    with caplog.at_level(logging.WARNING, logger="stats_worker.token_client"):
        token = client.get_token(SHOPPING_API, "read:orders write:orders")
    assert claims_of(token)["scope"] == "read:orders"
    assert "write:orders" in caplog.text
    assert token not in caplog.text


@pytest.mark.parametrize(
    ("resource", "secret", "error"),
    [
        ("https://unknown.api", None, "invalid_target"),
        (SHOPPING_API, "not-the-secret", "invalid_client"),
    ],
)
def test_provider_errors_become_clear_token_request_errors(oidc_provider, session, resource, secret, error):
    client = TokenClient(
        oidc_provider.token_endpoint, STATS_APP, secret or app_secret(STATS_APP), session=session
    )
    with pytest.raises(TokenRequestError) as failure:
        client.get_token(resource, "read:orders")
    assert failure.value.error == error
    assert "Fix:" in str(failure.value)
    assert app_secret(STATS_APP) not in str(failure.value)
