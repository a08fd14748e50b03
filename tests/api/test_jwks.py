"""How the API gets its keys: one fetch serves many requests, rotation costs one refetch, forged
``kid`` floods cost at most one refetch per cooldown, and cached keys outlive a JWKS outage."""

from __future__ import annotations

import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from authlib.oauth2 import OAuth2Error

from logto_m2m.http import make_session
from shopping_api import create_app
from shopping_api.auth import LogtoTokenValidator
from shopping_api.jwks import KeyStore
from tests.conftest import JwksServer, logto_claims, new_signing_key, sign

ROUTE = "/products"
CAPTURES = Path(__file__).parent.parent / "logto_captures"


@pytest.fixture
def database_url(tmp_path):
    return f"sqlite:///{tmp_path / 'shop.sqlite'}"


def build_app(api_settings, **settings):
    app = create_app({**api_settings, **settings})
    assert app.test_cli_runner().invoke(args=["init-db"]).exit_code == 0
    return app


def fresh_token(jwks_server, key, scope="read:products", **claims):
    return "Bearer " + sign(logto_claims(jwks_server.issuer, scope, **claims), key)


def test_one_fetch_serves_many_requests(client, jwks_server, signing_key):
    for _ in range(50):  # distinct tokens, so each one is verified with the key
        response = client.get(ROUTE, headers={"Authorization": fresh_token(jwks_server, signing_key)})
        assert response.status_code == 200
    assert jwks_server.fetch_count == 1


def test_concurrent_first_use_fetches_once(jwks_server):
    keys = KeyStore(
        endpoint=jwks_server.endpoint,
        issuer=jwks_server.issuer,
        jwks_uri=jwks_server.url,
        session=make_session(),
        ttl=600,
        cooldown=30,
    )
    barrier = threading.Barrier(20)

    def find():
        barrier.wait()
        return keys.find(jwks_server.keys[0].kid)

    with ThreadPoolExecutor(20) as pool:
        found = list(pool.map(lambda _: find(), range(20)))
    assert all(key is not None for key in found)
    assert jwks_server.fetch_count == 1


def test_an_expired_cache_is_refreshed_without_stalling_requests(jwks_server):
    clock = [0.0]
    keys = KeyStore(
        endpoint=jwks_server.endpoint,
        issuer=jwks_server.issuer,
        jwks_uri=jwks_server.url,
        session=make_session(),
        ttl=10,
        cooldown=0,
        clock=lambda: clock[0],
    )
    kid = jwks_server.keys[0].kid
    assert keys.find(kid) is not None
    clock[0] = 11  # the cache has expired
    jwks_server.delay = 1.5  # and the issuer has become slow
    refresher = threading.Thread(target=keys.find, args=(kid,))
    refresher.start()
    time.sleep(0.3)  # the refresher is now inside the slow fetch
    started = time.monotonic()
    assert keys.find(kid) is not None
    assert time.monotonic() - started < 0.5, "a request waited for someone else's JWKS refresh"
    refresher.join()
    assert jwks_server.fetch_count == 2


def test_key_rotation_costs_one_refetch(api_settings, jwks_server, signing_key):
    app = build_app(api_settings, JWKS_REFETCH_COOLDOWN_SECONDS=1)
    client = app.test_client()
    assert (
        client.get(ROUTE, headers={"Authorization": fresh_token(jwks_server, signing_key)}).status_code == 200
    )
    assert jwks_server.fetch_count == 1

    new_key = new_signing_key()
    jwks_server.publish(new_key, signing_key)  # Logto keeps the old key published for a while
    time.sleep(1.1)  # past the refetch cooldown
    for _ in range(5):
        response = client.get(ROUTE, headers={"Authorization": fresh_token(jwks_server, new_key)})
        assert response.status_code == 200
    assert jwks_server.fetch_count == 2
    # The previous key still verifies tokens issued before the rotation.
    assert (
        client.get(ROUTE, headers={"Authorization": fresh_token(jwks_server, signing_key)}).status_code == 200
    )
    assert jwks_server.fetch_count == 2


def test_forged_kid_flood_is_rate_limited(api_settings, jwks_server, signing_key):
    app = build_app(api_settings)  # default cooldown: 30 s
    client = app.test_client()
    assert (
        client.get(ROUTE, headers={"Authorization": fresh_token(jwks_server, signing_key)}).status_code == 200
    )
    claims = logto_claims(jwks_server.issuer, "read:products")
    statuses = set()
    for _ in range(1000):
        forged = sign(claims, signing_key, {"kid": uuid.uuid4().hex})
        statuses.add(client.get(ROUTE, headers={"Authorization": f"Bearer {forged}"}).status_code)
    assert statuses == {401}
    # The first fetch, plus at most one refetch for the whole flood within the cooldown.
    assert jwks_server.fetch_count <= 2


def test_cached_keys_survive_a_jwks_outage(api_settings, jwks_server, signing_key):
    app = build_app(api_settings, JWKS_CACHE_TTL_SECONDS=1, JWKS_REFETCH_COOLDOWN_SECONDS=1)
    client = app.test_client()
    assert (
        client.get(ROUTE, headers={"Authorization": fresh_token(jwks_server, signing_key)}).status_code == 200
    )
    jwks_server.stop()
    time.sleep(1.1)  # the cache has expired and the JWKS endpoint is down
    for _ in range(20):
        response = client.get(ROUTE, headers={"Authorization": fresh_token(jwks_server, signing_key)})
        assert response.status_code == 200


def test_keys_from_discovery_when_no_jwks_uri_is_set(api_settings, jwks_server, signing_key):
    settings = {k: v for k, v in api_settings.items() if k != "LOGTO_JWKS_URI"}
    client = build_app(settings).test_client()
    assert (
        client.get(ROUTE, headers={"Authorization": fresh_token(jwks_server, signing_key)}).status_code == 200
    )
    assert (jwks_server.discovery_count, jwks_server.fetch_count) == (1, 1)


def test_jwks_without_usable_keys_rejects_tokens(api_settings, jwks_server, signing_key, monkeypatch):
    """Private-key material, symmetric keys and junk entries in a JWKS are never used."""
    monkeypatch.setattr(jwks_server, "keys", [])  # before the app loads its keys at start
    client = build_app(api_settings).test_client()
    response = client.get(ROUTE, headers={"Authorization": fresh_token(jwks_server, signing_key)})
    assert response.status_code == 401
    assert (
        KeyStore._signing_keys(
            [
                {"kty": "oct", "kid": "h", "k": "c2VjcmV0"},
                "junk",
                {"kty": "EC", "kid": "broken", "crv": "P-384", "x": "AA", "y": "AA"},
                {**signing_key.as_dict(private=False), "use": "enc"},
            ]
        )
        == {}
    )


# -- the verified-token cache -----------------------------------------------------------------


def test_a_verified_token_is_not_verified_again(client, jwks_server, signing_key, monkeypatch):
    import shopping_api.auth as auth

    calls = []
    real = auth.validate_compact
    monkeypatch.setattr(auth, "validate_compact", lambda *a, **k: calls.append(1) or real(*a, **k))
    token = fresh_token(jwks_server, signing_key)
    for _ in range(20):
        assert client.get(ROUTE, headers={"Authorization": token}).status_code == 200
    assert len(calls) == 1


def test_cached_token_is_never_accepted_past_exp(jwks_server, signing_key):
    now = [1_800_000_000.0]
    keys = KeyStore(
        endpoint=jwks_server.endpoint,
        issuer=jwks_server.issuer,
        jwks_uri=jwks_server.url,
        session=make_session(),
        ttl=600,
        cooldown=30,
    )
    validator = LogtoTokenValidator(
        issuer=jwks_server.issuer,
        resource="https://shopping.api",
        keys=keys,
        algorithms=["ES384"],
        leeway=0,
        clock=lambda: now[0],
    )
    token = sign(
        logto_claims(jwks_server.issuer, "read:products", iat=int(now[0]), exp=int(now[0]) + 60), signing_key
    )
    assert validator.authenticate_token(token)["sub"]
    now[0] += 61
    with pytest.raises(OAuth2Error) as excinfo:
        validator.authenticate_token(token)
    assert excinfo.value.error == "invalid_token"


def test_cached_token_dies_with_its_key(api_settings, jwks_server, signing_key):
    app = build_app(api_settings, JWKS_CACHE_TTL_SECONDS=1, JWKS_REFETCH_COOLDOWN_SECONDS=0)
    client = app.test_client()
    token = fresh_token(jwks_server, signing_key)
    assert client.get(ROUTE, headers={"Authorization": token}).status_code == 200
    jwks_server.publish(new_signing_key())  # the old key is withdrawn (compromised)
    time.sleep(1.1)
    other = fresh_token(jwks_server, jwks_server.keys[0])
    assert client.get(ROUTE, headers={"Authorization": other}).status_code == 200  # triggers the refresh
    assert client.get(ROUTE, headers={"Authorization": token}).status_code == 401


# -- real tokens recorded from a Logto server ---------------------------------------------------


def capture(name: str) -> dict:
    return json.loads((CAPTURES / name).read_text())


@pytest.fixture
def logto_jwks():
    from joserfc.jwk import ECKey

    server = JwksServer(*[ECKey.import_key(k) for k in capture("jwks.json")["keys"]]).start()
    yield server
    server.stop()


def logto_validator(server: JwksServer, at: int, resource="https://shopping.api"):
    keys = KeyStore(
        endpoint="http://127.0.0.1:3001",
        issuer="http://127.0.0.1:3001/oidc",
        jwks_uri=server.url,
        session=make_session(),
        ttl=600,
        cooldown=30,
    )
    return LogtoTokenValidator(
        issuer="http://127.0.0.1:3001/oidc",
        resource=resource,
        keys=keys,
        algorithms=["ES384", "ES256", "ES512", "RS256", "PS256"],
        clock=lambda: at,
    )


@pytest.mark.parametrize(
    ("name", "scopes"),
    [
        ("token-01-basic-full.json", {"read:products", "write:products", "read:orders"}),
        ("token-04-resource-no-scope.json", set()),
        ("token-06-mixed-granted-and-not.json", {"read:products"}),
        ("token-09-client-secret-post.json", {"read:products", "write:products", "read:orders"}),
    ],
)
def test_real_logto_tokens_are_accepted(logto_jwks, name, scopes):
    recorded = capture(name)
    payload = recorded["jwt_payload"]
    token = logto_validator(logto_jwks, payload["iat"]).authenticate_token(recorded["body"]["access_token"])
    assert token.scopes == scopes
    assert token["sub"] == token["client_id"] == "tpj59n63iwhnfdf664tzn"


def test_real_logto_token_for_the_management_api_is_refused(logto_jwks):
    recorded = capture("token-18-resource-not-granted-mgmt-api.json")
    validator = logto_validator(logto_jwks, recorded["jwt_payload"]["iat"])
    with pytest.raises(OAuth2Error) as excinfo:
        validator.authenticate_token(recorded["body"]["access_token"])
    assert excinfo.value.error == "invalid_token"


def test_real_logto_token_expires(logto_jwks):
    recorded = capture("token-01-basic-full.json")
    validator = logto_validator(logto_jwks, recorded["jwt_payload"]["exp"] + 31)
    with pytest.raises(OAuth2Error) as excinfo:
        validator.authenticate_token(recorded["body"]["access_token"])
    assert "expired" in excinfo.value.description
