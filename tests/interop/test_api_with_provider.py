"""The shopping API under real gunicorn, configured only through settings, on oidc-provider tokens."""

from __future__ import annotations

import base64
import json
import time

import pytest
import requests

from logto_m2m.http import make_session
from stats_worker.token_client import BearerAuth, TokenClient

from .conftest import ADMIN_APP, OTHER_API, SHOPPING_API, STATS_APP, api_env, app_secret, init_db, start_api

pytestmark = [pytest.mark.node, pytest.mark.slow]

NEW_PRODUCT = {
    "sku": "INTEROP-1",
    "name": "Interop mug",
    "description": "from oidc-provider",
    "price": 1299,
    "currency": "USD",
}
#: The key tests shorten the API's JWKS refetch cooldown (JWKS_REFETCH_COOLDOWN_SECONDS, default
#: 30 s) so that "one refetch per cooldown" can be watched without waiting half a minute.
COOLDOWN = 1


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def kid_of(token: str) -> str:
    header = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"]


def assert_bearer_error(response: requests.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    assert f'error="{error}"' in challenge


@pytest.fixture(scope="module")
def api(oidc_provider, tmp_path_factory):
    """One API (two gunicorn workers) trusting the module's provider."""
    workdir = tmp_path_factory.mktemp("api")
    env = api_env(oidc_provider, f"sqlite:///{workdir / 'shop.sqlite'}")
    init_db(env, workdir)
    server, base_url = start_api(env, workdir)
    yield base_url
    server.stop()


def test_granted_scopes_pass_and_the_others_get_403(oidc_provider, api):
    """The stats worker's own token client and auth, as it calls the API in production."""
    # The stats worker's role holds read:products and read:orders; write:products is dropped.
    scopes = "read:products read:orders write:products"
    with make_session(allowed_methods=("POST",)) as session, requests.Session() as http:
        client = TokenClient(oidc_provider.token_endpoint, STATS_APP, app_secret(STATS_APP), session=session)
        http.auth = BearerAuth(client, SHOPPING_API, scopes)
        products = http.get(f"{api}/products", timeout=10)
        orders = http.get(f"{api}/orders", params={"date": "2026-11-20"}, timeout=10)
        write = http.post(f"{api}/products", json=NEW_PRODUCT, timeout=10)
        order = http.post(
            f"{api}/orders",
            timeout=10,
            json={"customer_id": "user-alice", "items": [{"product_id": 1, "quantity": 1}]},
        )
    assert client.fetch_count == 1  # one token for all four calls
    assert products.status_code == 200, products.text
    assert products.json()["products"] == []
    assert orders.status_code == 200, orders.text
    assert orders.json()["orders"] == []
    assert_bearer_error(write, 403, "insufficient_scope")
    assert 'scope="write:products"' in write.headers["WWW-Authenticate"]
    assert_bearer_error(order, 403, "insufficient_scope")
    assert 'scope="write:orders"' in order.headers["WWW-Authenticate"]


def test_sub_of_the_provider_token_is_recorded_as_creator(oidc_provider, api):
    token = oidc_provider.token(SHOPPING_API, "write:products read:products", app_id=ADMIN_APP)
    created = requests.post(f"{api}/products", json=NEW_PRODUCT, headers=bearer(token), timeout=10)
    assert created.status_code == 201, created.text
    assert created.json()["created_by"] == ADMIN_APP


def test_token_for_another_resource_gets_401(oidc_provider, api):
    # Same issuer, same key, a scope the route needs: only the audience is wrong.
    token = oidc_provider.token(OTHER_API, "read:products")
    response = requests.get(f"{api}/products", headers=bearer(token), timeout=10)
    assert_bearer_error(response, 401, "invalid_token")


@pytest.fixture
def single_worker_api(fresh_provider, tmp_path):
    """An API with one gunicorn worker (one key cache, so JWKS requests can be counted exactly)."""
    env = api_env(
        fresh_provider, f"sqlite:///{tmp_path / 'shop.sqlite'}", JWKS_REFETCH_COOLDOWN_SECONDS=str(COOLDOWN)
    )
    init_db(env, tmp_path)
    server, base_url = start_api(env, tmp_path, workers=1)
    yield base_url
    server.stop()


def get_products(base_url: str, token: str) -> requests.Response:
    return requests.get(f"{base_url}/products", headers=bearer(token), timeout=10)


def test_new_published_key_costs_one_jwks_refetch(fresh_provider, single_worker_api):
    provider, api = fresh_provider, single_worker_api
    old_token = provider.token(SHOPPING_API, "read:products")
    assert get_products(api, old_token).status_code == 200
    assert provider.stats()["jwks_requests"] == 1  # first use

    time.sleep(COOLDOWN + 0.2)
    new_kid = provider.switch_key(publish=True)
    new_token = provider.token(SHOPPING_API, "read:products")
    assert kid_of(new_token) == new_kid != kid_of(old_token)

    assert get_products(api, new_token).status_code == 200
    assert provider.stats()["jwks_requests"] == 2  # the unknown kid cost exactly one refetch
    # From now on both keys are known: no more fetching, and the old key still vouches.
    assert get_products(api, provider.token(SHOPPING_API, "read:products")).status_code == 200
    assert get_products(api, old_token).status_code == 200
    assert provider.stats()["jwks_requests"] == 2


def test_key_the_provider_does_not_publish_gets_401(fresh_provider, single_worker_api):
    provider, api = fresh_provider, single_worker_api
    assert get_products(api, provider.token(SHOPPING_API, "read:products")).status_code == 200
    assert provider.stats()["jwks_requests"] == 1

    time.sleep(COOLDOWN + 0.2)
    provider.switch_key(publish=False)
    unknown = provider.token(SHOPPING_API, "read:products")
    assert_bearer_error(get_products(api, unknown), 401, "invalid_token")
    assert provider.stats()["jwks_requests"] == 2  # one refetch, which did not find the kid
    # Within the cooldown, more unknown-kid tokens cost no JWKS request at all.
    assert_bearer_error(
        get_products(api, provider.token(SHOPPING_API, "read:products")), 401, "invalid_token"
    )
    assert provider.stats()["jwks_requests"] == 2

    # Once the provider publishes a new key, it is picked up after the cooldown.
    time.sleep(COOLDOWN + 0.2)
    provider.switch_key(publish=True)
    assert get_products(api, provider.token(SHOPPING_API, "read:products")).status_code == 200
    assert provider.stats()["jwks_requests"] == 3


def test_worker_recovers_when_its_token_key_is_retired(fresh_provider, single_worker_api):
    """End of a rotation: the old key leaves the JWKS, the worker's cached token gets 401, and
    its BearerAuth fetches a token signed with the new key and retries once."""
    provider, api = fresh_provider, single_worker_api
    with make_session(allowed_methods=("POST",)) as session, requests.Session() as http:
        client = TokenClient(provider.token_endpoint, STATS_APP, app_secret(STATS_APP), session=session)
        http.auth = BearerAuth(client, SHOPPING_API, "read:products")
        assert http.get(f"{api}/products", timeout=10).status_code == 200
        old_kid = kid_of(client.get_token(SHOPPING_API, "read:products"))

        time.sleep(COOLDOWN + 0.2)
        new_kid = provider.switch_key(publish=True, retire=True)
        # Another app's token with the new kid makes the API refetch: the old key is gone.
        admin_token = provider.token(SHOPPING_API, "read:products", app_id=ADMIN_APP)
        assert get_products(api, admin_token).status_code == 200

        response = http.get(f"{api}/products", timeout=10)
    assert response.status_code == 200, response.text
    assert [r.status_code for r in response.history] == [401]
    assert client.fetch_count == 2
    assert kid_of(client.get_token(SHOPPING_API, "read:products")) == new_kid != old_kid
