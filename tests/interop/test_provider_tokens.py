"""Tokens from node-oidc-provider look like Logto's, and the shopping API's validator takes them."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from logto_m2m.http import make_session
from shopping_api.auth import InsufficientScope, InvalidToken, LogtoTokenValidator
from shopping_api.config import SUPPORTED_ALGORITHMS
from shopping_api.jwks import KeyStore

from .conftest import ADMIN_APP, OTHER_API, SHOPPING_API, STATS_APP, app_secret

pytestmark = pytest.mark.node

#: Responses recorded from a real Logto OSS server (see its README).
CAPTURES = Path(__file__).resolve().parents[1] / "logto_captures"


def capture(name: str) -> dict:
    return json.loads((CAPTURES / f"{name}.json").read_text(encoding="utf-8"))


def jose_part(token: str, index: int) -> dict:
    part = token.split(".")[index]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def test_discovery_names_logto_style_endpoints(oidc_provider):
    with make_session() as session:
        metadata = session.get(f"{oidc_provider.issuer}/.well-known/openid-configuration").json()
        jwks = session.get(metadata["jwks_uri"])
    assert metadata["issuer"] == oidc_provider.issuer
    assert metadata["token_endpoint"] == oidc_provider.token_endpoint
    assert metadata["jwks_uri"] == oidc_provider.jwks_uri
    assert "client_credentials" in metadata["grant_types_supported"]
    assert "client_secret_basic" in metadata["token_endpoint_auth_methods_supported"]
    assert jwks.headers["Content-Type"].startswith("application/jwk-set+json")
    [key] = jwks.json()["keys"]
    assert {k: key[k] for k in ("kty", "crv", "alg", "use")} == {
        "kty": "EC",
        "crv": "P-384",
        "alg": "ES384",
        "use": "sig",
    }
    assert "d" not in key


def test_access_token_has_logto_shape(oidc_provider):
    real = capture("token-01-basic-full")
    response = oidc_provider.request_token(SHOPPING_API, real["request"]["form"]["scope"])
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert sorted(body) == sorted(real["body"])  # no refresh_token, no id_token
    # write:products is not held by the stats worker's role: dropped silently, as in Logto.
    assert body["scope"] == "read:products read:orders"
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600

    token = body["access_token"]
    header, claims = jose_part(token, 0), jose_part(token, 1)
    with make_session() as session:
        jwks_kids = {key["kid"] for key in session.get(oidc_provider.jwks_uri).json()["keys"]}
    assert list(header) == list(real["jwt_header"])  # alg, typ, kid
    assert header["alg"] == real["jwt_header"]["alg"] == "ES384"
    assert header["typ"] == real["jwt_header"]["typ"] == "at+jwt"
    assert header["kid"] in jwks_kids
    assert list(claims) == list(real["jwt_payload"])  # jti sub iat exp scope client_id iss aud
    assert claims["iss"] == oidc_provider.issuer
    assert claims["aud"] == SHOPPING_API  # exactly as requested: no trailing slash
    assert claims["sub"] == claims["client_id"] == STATS_APP
    assert claims["scope"] == body["scope"]
    assert claims["exp"] - claims["iat"] == 3600


def test_nothing_granted_means_no_scope_at_all(oidc_provider):
    real = capture("token-05-scope-not-granted-write_orders")
    response = oidc_provider.request_token(SHOPPING_API, real["request"]["form"]["scope"])
    assert response.status_code == 200, response.text
    assert sorted(response.json()) == sorted(real["body"])
    assert "scope" not in response.json()
    claims = jose_part(response.json()["access_token"], 1)
    assert list(claims) == list(real["jwt_payload"])
    assert "scope" not in claims


@pytest.mark.parametrize(
    "name",
    [
        "token-08-wrong-secret-basic",
        "token-12-unknown-resource",
        "token-13-no-client-auth",
        "token-14-unsupported-grant-password",
        "token-16-basic-and-post-both",
    ],
)
def test_token_endpoint_errors_match_logto(oidc_provider, name):
    """Replay a recorded failing request: same status, error and description as real Logto."""
    real = capture(name)
    form = dict(real["request"]["form"])
    secret = app_secret(STATS_APP)
    if "client_secret" in form:
        form.update(client_id=STATS_APP, client_secret=secret)
    auth = {"basic": (STATS_APP, "not-the-secret" if "wrong-secret" in name else secret), "none": None}[
        real["request"]["auth"]
    ]
    with make_session(retries=0) as session:
        response = session.post(oidc_provider.token_endpoint, data=form, auth=auth)
    assert response.status_code == real["status"]
    body = response.json()
    # Logto's error middleware adds "code" and "message"; the OAuth fields are the provider's.
    assert body["error"] == real["body"]["error"]
    assert body["error_description"] == real["body"]["error_description"]


def test_two_resources_in_one_request_are_refused(oidc_provider):
    with make_session(retries=0) as session:
        response = session.post(
            oidc_provider.token_endpoint,
            auth=(STATS_APP, app_secret(STATS_APP)),
            data={"grant_type": "client_credentials", "resource": [SHOPPING_API, OTHER_API]},
        )
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_target",
        "error_description": "only a single resource indicator value is supported for this grant type",
    }


@pytest.fixture(scope="module")
def validator(oidc_provider):
    """The shopping API's own validator, pointed at the provider through its settings' values."""
    session = make_session(retries=1)
    keys = KeyStore(
        endpoint=oidc_provider.endpoint,
        issuer=oidc_provider.issuer,
        jwks_uri=oidc_provider.jwks_uri,
        session=session,
        ttl=600,
        cooldown=30,
    )
    yield LogtoTokenValidator(
        issuer=oidc_provider.issuer, resource=SHOPPING_API, keys=keys, algorithms=SUPPORTED_ALGORITHMS
    )
    session.close()


def test_validator_accepts_provider_tokens_and_checks_scopes(oidc_provider, validator):
    token = validator.authenticate_token(oidc_provider.token(SHOPPING_API, "read:products read:orders"))
    assert token["sub"] == STATS_APP
    assert token.scopes == {"read:products", "read:orders"}
    validator.validate_token(token, ["read:orders"], request=None)
    with pytest.raises(InsufficientScope):
        validator.validate_token(token, ["write:orders"], request=None)

    admin = validator.authenticate_token(oidc_provider.token(SHOPPING_API, "write:orders", ADMIN_APP))
    validator.validate_token(admin, ["write:orders"], request=None)


def test_validator_rejects_token_for_another_resource(oidc_provider, validator):
    other = oidc_provider.token(OTHER_API, "read:products")
    assert jose_part(other, 1)["aud"] == OTHER_API
    with pytest.raises(InvalidToken, match="another API"):
        validator.authenticate_token(other)
