"""Every token rule of the design, one row each: what a request carries, and what the API answers.

Each row asserts the status, the ``WWW-Authenticate`` header and the JSON body, and that neither
the response nor any log line contains the token or key material.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
import uuid

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc import jwe
from joserfc.jwk import ECKey, RSAKey

from tests.conftest import APP_ID, RESOURCE, logto_claims, new_signing_key, sign

ROUTE = "/products"  # needs read:products
REALM_ONLY = 'Bearer realm="shopping-api"'


def b64(data: dict | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.fixture
def database_url(tmp_path):
    """Token checks do not depend on the database: SQLite only, to keep this table fast."""
    return f"sqlite:///{tmp_path / 'shop.sqlite'}"


@pytest.fixture
def rsa_key():
    return RSAKey.generate_key(2048, parameters={"use": "sig"}, auto_kid=True)


@pytest.fixture
def other_key():
    return new_signing_key()


# -- the table -------------------------------------------------------------------------------
# Each case builds the Authorization header value from a context ``c`` (fixtures and helpers).


class Ctx:
    def __init__(self, make_token, signing_key, jwks_server, rsa_key, other_key):
        self.make_token = make_token
        self.key = signing_key
        self.jwks = jwks_server
        self.rsa_key = rsa_key
        self.other_key = other_key
        self.now = int(time.time())

    def claims(self, scope="read:products", **overrides):
        return logto_claims(self.jwks.issuer, scope, **overrides)

    def raw(self, header: dict, claims: dict, signature: bytes = b"") -> str:
        return f"{b64(header)}.{b64(claims)}.{b64(signature) if signature else ''}"


def header_for(c: Ctx, **extra) -> dict:
    return {"alg": "ES384", "typ": "at+jwt", "kid": c.key.kid, **extra}


OK = (200, None, None)
NO_CREDENTIALS = (401, None, "unauthorized")
BAD_REQUEST = (400, "invalid_request", "invalid_request")
INVALID = (401, "invalid_token", "invalid_token")
FORBIDDEN = (403, "insufficient_scope", "insufficient_scope")

CASES = {
    # -- the header itself (RFC 6750 section 2.1, 3.1)
    "no header": (lambda c: None, NO_CREDENTIALS),
    "other scheme": (lambda c: "Basic bTJtOnNlY3JldA==", NO_CREDENTIALS),
    "lowercase bearer": (lambda c: "bearer " + c.make_token("read:products"), OK),
    "upper-case BEARER": (lambda c: "BEARER " + c.make_token("read:products"), OK),
    "bearer without token": (lambda c: "Bearer", BAD_REQUEST),
    "bearer with empty token": (lambda c: "Bearer    ", BAD_REQUEST),
    "two-part token value": (lambda c: "Bearer abc def", BAD_REQUEST),
    "token then junk": (lambda c: "Bearer " + c.make_token("read:products") + " extra", BAD_REQUEST),
    "characters outside b64token": (lambda c: 'Bearer a"b', BAD_REQUEST),
    # -- the JWS
    "not a JWT": (lambda c: "Bearer abcdef", INVALID),
    "three garbage parts": (lambda c: "Bearer a.b.c", INVALID),
    "four parts": (lambda c: "Bearer " + c.make_token("read:products") + ".x", INVALID),
    "header not JSON": (lambda c: "Bearer " + b64(b"{not json") + "." + b64(c.claims()) + ".c2ln", INVALID),
    "payload not JSON": (lambda c: "Bearer " + sign_raw_payload(c, b"not json"), INVALID),
    "payload a JSON array": (lambda c: "Bearer " + sign_raw_payload(c, b"[1,2]"), INVALID),
    "signature tampered": (lambda c: "Bearer " + tamper(c.make_token("read:products")), INVALID),
    "alg none": (lambda c: "Bearer " + c.raw(header_for(c, alg="none"), c.claims()), INVALID),
    "HS256 signed with the public key": (lambda c: "Bearer " + hs256_with_public_key(c), INVALID),
    "alg not a string": (
        lambda c: "Bearer " + c.raw(header_for(c, alg=["ES384"]), c.claims(), b"sig"),
        INVALID,
    ),
    "alg outside the list (RS512)": (lambda c: "Bearer " + rs(c, "RS512"), INVALID),
    "valid ES384 Logto-shaped token": (lambda c: "Bearer " + c.make_token("read:products"), OK),
    "RS256 (allowed by default)": (lambda c: "Bearer " + rs(c, "RS256"), OK),
    "PS256 (allowed by default)": (lambda c: "Bearer " + rs(c, "PS256"), OK),
    "PS256 on a key published for RS256": (lambda c: "Bearer " + ps256_on_rs256_key(c), INVALID),
    "ES256 header on a P-384 key": (lambda c: "Bearer " + es256_header_p384(c), INVALID),
    "wrong key under a known kid": (
        lambda c: "Bearer " + sign(c.claims(), c.other_key, {"kid": c.key.kid}),
        INVALID,
    ),
    "unknown kid": (lambda c: "Bearer " + sign(c.claims(), c.other_key), INVALID),
    "no kid": (lambda c: "Bearer " + c.make_token("read:products", header={"kid": None}), INVALID),
    "JWE instead of JWS": (lambda c: "Bearer " + encrypted(c), INVALID),
    "oversized token": (lambda c: "Bearer " + c.make_token("read:products", pad="x" * 9000), INVALID),
    # -- typ (RFC 9068 section 4)
    "typ missing": (lambda c: "Bearer " + c.make_token("read:products", header={"typ": None}), INVALID),
    "typ JWT": (lambda c: "Bearer " + c.make_token("read:products", header={"typ": "JWT"}), INVALID),
    "an ID token": (lambda c: "Bearer " + id_token(c), INVALID),
    "typ application/at+jwt": (
        lambda c: "Bearer " + c.make_token("read:products", header={"typ": "application/at+jwt"}),
        OK,
    ),
    "typ AT+JWT (media types are case-insensitive)": (
        lambda c: "Bearer " + c.make_token("read:products", header={"typ": "AT+JWT"}),
        OK,
    ),
    # -- headers that point at keys are never followed (RFC 8725 section 3.10), crit
    "jku header": (
        lambda c: "Bearer " + c.make_token("read:products", header={"jku": c.jwks.endpoint + "/evil-jku"}),
        INVALID,
    ),
    "x5u header": (
        lambda c: "Bearer " + c.make_token("read:products", header={"x5u": c.jwks.endpoint + "/evil-x5u"}),
        INVALID,
    ),
    "embedded jwk header": (lambda c: "Bearer " + embedded_jwk(c), INVALID),
    "x5c header": (lambda c: "Bearer " + c.make_token("read:products", header={"x5c": ["MIIB"]}), INVALID),
    "unknown crit": (
        lambda c: "Bearer " + es384_by_hand(c, header_for(c, crit=["urn:example:x"], **{"urn:example:x": 1})),
        INVALID,
    ),
    "valid token signed by hand (control for the row above)": (
        lambda c: "Bearer " + es384_by_hand(c, header_for(c)),
        OK,
    ),
    # -- iss / aud (exact strings)
    "wrong iss": (
        lambda c: "Bearer " + c.make_token("read:products", iss="https://evil.example/oidc"),
        INVALID,
    ),
    "iss with trailing slash": (
        lambda c: "Bearer " + c.make_token("read:products", iss=c.jwks.issuer + "/"),
        INVALID,
    ),
    "iss missing": (lambda c: "Bearer " + c.make_token("read:products", drop=("iss",)), INVALID),
    "wrong aud": (lambda c: "Bearer " + c.make_token("read:products", aud="https://other.api"), INVALID),
    "aud with trailing slash": (
        lambda c: "Bearer " + c.make_token("read:products", aud=RESOURCE + "/"),
        INVALID,
    ),
    "aud missing": (lambda c: "Bearer " + c.make_token("read:products", drop=("aud",)), INVALID),
    "aud list containing the API": (
        lambda c: "Bearer " + c.make_token("read:products", aud=["https://other.api", RESOURCE]),
        OK,
    ),
    "aud list without the API": (
        lambda c: "Bearer " + c.make_token("read:products", aud=["https://other.api"]),
        INVALID,
    ),
    "token for the Management API": (
        lambda c: "Bearer " + c.make_token("all", aud="https://default.logto.app/api"),
        INVALID,
    ),
    # -- time (30 s leeway by default)
    "expired": (
        lambda c: "Bearer " + c.make_token("read:products", iat=c.now - 7200, exp=c.now - 3600),
        INVALID,
    ),
    "expired within leeway": (
        lambda c: "Bearer " + c.make_token("read:products", iat=c.now - 3600, exp=c.now - 10),
        OK,
    ),
    "exp missing": (lambda c: "Bearer " + c.make_token("read:products", drop=("exp",)), INVALID),
    "exp not a number": (lambda c: "Bearer " + c.make_token("read:products", exp=str(c.now + 3600)), INVALID),
    "exp a boolean": (lambda c: "Bearer " + c.make_token("read:products", exp=True), INVALID),
    "iat in the future": (lambda c: "Bearer " + c.make_token("read:products", iat=c.now + 300), INVALID),
    "iat slightly ahead (clock skew)": (
        lambda c: "Bearer " + c.make_token("read:products", iat=c.now + 10),
        OK,
    ),
    "iat missing": (lambda c: "Bearer " + c.make_token("read:products", drop=("iat",)), INVALID),
    "nbf in the future": (lambda c: "Bearer " + c.make_token("read:products", nbf=c.now + 300), INVALID),
    "nbf in the past": (lambda c: "Bearer " + c.make_token("read:products", nbf=c.now - 5), OK),
    # -- the other required claims
    "sub missing": (lambda c: "Bearer " + c.make_token("read:products", drop=("sub",)), INVALID),
    "client_id missing": (lambda c: "Bearer " + c.make_token("read:products", drop=("client_id",)), INVALID),
    "jti missing": (lambda c: "Bearer " + c.make_token("read:products", drop=("jti",)), INVALID),
    "sub not a string": (lambda c: "Bearer " + c.make_token("read:products", sub=42), INVALID),
    "client_id not a string": (lambda c: "Bearer " + c.make_token("read:products", client_id=["a"]), INVALID),
    "jti empty": (lambda c: "Bearer " + c.make_token("read:products", jti=""), INVALID),
    # -- scope (exact, case-sensitive, space-separated string)
    "scope missing": (lambda c: "Bearer " + c.make_token(None), FORBIDDEN),
    "scope empty": (lambda c: "Bearer " + c.make_token(""), FORBIDDEN),
    "scope look-alike": (lambda c: "Bearer " + c.make_token("read:products2 read:product"), FORBIDDEN),
    "scope wrong case": (lambda c: "Bearer " + c.make_token("Read:Products"), FORBIDDEN),
    "scope for another route": (lambda c: "Bearer " + c.make_token("write:products read:orders"), FORBIDDEN),
    "scope among others": (lambda c: "Bearer " + c.make_token("read:orders read:products write:orders"), OK),
    "scope not a string": (lambda c: "Bearer " + c.make_token(["read:products"]), INVALID),
}


# -- token builders for the rows above ------------------------------------------------------


def tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["scope"] = "read:products write:products"
    return f"{header}.{b64(claims)}.{signature}"


def sign_raw_payload(c: Ctx, payload: bytes) -> str:
    from joserfc import jws

    return jws.serialize_compact(header_for(c), payload, c.key, algorithms=["ES384"])


def es384_by_hand(c: Ctx, header: dict) -> str:
    """ES384 without joserfc, which refuses to emit headers it does not understand."""
    signing_input = f"{b64(header)}.{b64(c.claims())}".encode()
    der = c.key.private_key.sign(signing_input, ec.ECDSA(hashes.SHA384()))
    r, s = decode_dss_signature(der)
    return f"{signing_input.decode()}.{b64(r.to_bytes(48, 'big') + s.to_bytes(48, 'big'))}"


def hs256_with_public_key(c: Ctx) -> str:
    # The classic algorithm-confusion attack: the public key, known to all, used as an HMAC secret.
    # (joserfc refuses to build this token, so it is assembled by hand.)
    signing_input = f"{b64(header_for(c, alg='HS256'))}.{b64(c.claims())}"
    mac = hmac.new(c.key.as_pem(private=False), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def rs(c: Ctx, alg: str) -> str:
    c.jwks.publish(c.key, c.rsa_key)
    return sign(c.claims(), c.rsa_key, alg=alg)


def ps256_on_rs256_key(c: Ctx) -> str:
    # RFC 8725 section 3.1: a key is used with one algorithm; the JWK's "alg" pins it.
    pinned = RSAKey.generate_key(2048, parameters={"use": "sig", "alg": "RS256"}, auto_kid=True)
    c.jwks.publish(c.key, pinned)
    unpinned = RSAKey.import_key({k: v for k, v in pinned.as_dict(private=True).items() if k != "alg"})
    return sign(c.claims(), unpinned, {"kid": pinned.kid}, alg="PS256")


def es256_header_p384(c: Ctx) -> str:
    # Header says ES256, the kid names our P-384 key: the alg does not fit the key.
    p256 = ECKey.generate_key("P-256")
    token = sign(c.claims(), p256, {"kid": c.key.kid}, alg="ES256")
    return token


def encrypted(c: Ctx) -> str:
    key = ECKey.generate_key("P-384")
    return jwe.encrypt_compact(
        {"alg": "ECDH-ES", "enc": "A256GCM", "typ": "at+jwt"},
        json.dumps(c.claims()).encode(),
        key,
        algorithms=["ECDH-ES", "A256GCM"],
    )


def id_token(c: Ctx) -> str:
    claims = c.claims(scope=None, aud=APP_ID)
    claims.pop("client_id")
    claims.update(nonce="n", auth_time=c.now)
    return sign(claims, c.key, {"typ": "JWT"})


def embedded_jwk(c: Ctx) -> str:
    # The attacker signs with their own key and ships it in the header, under a known kid.
    return sign(c.claims(), c.other_key, {"kid": c.key.kid, "jwk": c.other_key.as_dict(private=False)})


# -- the test ---------------------------------------------------------------------------------


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_token_rule(case, client, make_token, signing_key, jwks_server, rsa_key, other_key, caplog):
    caplog.set_level(logging.DEBUG)
    c = Ctx(make_token, signing_key, jwks_server, rsa_key, other_key)
    build, (status, header_error, body_error) = CASES[case]
    value = build(c)
    response = client.get(ROUTE, headers={"Authorization": value} if value is not None else {})

    assert response.status_code == status, response.get_json()
    challenge = response.headers.get("WWW-Authenticate")
    if status == 200:
        assert challenge is None
        assert "products" in response.get_json()
    else:
        body = response.get_json()
        assert body["error"] == body_error
        assert body["error_description"]
        if header_error is None:
            assert challenge == REALM_ONLY
        else:
            assert challenge.startswith(f'{REALM_ONLY}, error="{header_error}", error_description="')
            if status == 403:
                assert challenge.endswith(', scope="read:products"')
    assert_nothing_leaks(value, response, caplog.text, signing_key, rsa_key)
    assert not any("evil" in path for path in jwks_server.paths), "a key URL from a token was fetched"


def assert_nothing_leaks(value, response, logs, *keys):
    exposed = response.get_data(as_text=True) + str(response.headers) + logs
    if value:
        token = value.split(" ", 1)[-1].strip()
        for part in token.split("."):
            if len(part) > 16:
                assert part not in exposed
    for key in keys:
        for name, field in key.as_dict(private=True).items():
            if name in ("d", "p", "q", "dp", "dq", "qi") or (name in ("x", "y", "n") and len(field) > 16):
                assert field not in exposed
    assert "Traceback" not in exposed


def test_scopes_are_checked_per_route(client, bearer):
    """A token good for reading products cannot create one."""
    response = client.post(
        ROUTE,
        json={"sku": "X-1", "name": "x", "price": 1, "currency": "USD"},
        headers=bearer("read:products"),
    )
    assert response.status_code == 403
    assert response.headers["WWW-Authenticate"].endswith('scope="write:products"')


def test_algorithm_list_is_configurable(api_settings, rsa_key, jwks_server, signing_key):
    from shopping_api import create_app

    app = create_app({**api_settings, "TOKEN_ALGORITHMS": "ES384"})
    assert app.test_cli_runner().invoke(args=["init-db"]).exit_code == 0
    jwks_server.publish(signing_key, rsa_key)
    claims = logto_claims(jwks_server.issuer, "read:products")
    client = app.test_client()
    rs256 = client.get(ROUTE, headers={"Authorization": "Bearer " + sign(claims, rsa_key, alg="RS256")})
    es384 = client.get(ROUTE, headers={"Authorization": "Bearer " + sign(claims, signing_key)})
    assert (rs256.status_code, es384.status_code) == (401, 200)


def test_leeway_is_configurable(api_settings, jwks_server, signing_key):
    from shopping_api import create_app

    app = create_app({**api_settings, "TOKEN_LEEWAY_SECONDS": 0})
    assert app.test_cli_runner().invoke(args=["init-db"]).exit_code == 0
    now = int(time.time())
    late = sign(logto_claims(jwks_server.issuer, "read:products", exp=now - 5), signing_key)
    assert app.test_client().get(ROUTE, headers={"Authorization": f"Bearer {late}"}).status_code == 401


def test_claims_reach_the_view(client, make_token, app):
    """The verified ``sub`` is the calling app: views record it (created_by)."""
    token = make_token("write:products read:products", sub="app-123", client_id="app-123")
    response = client.post(
        ROUTE,
        json={"sku": f"SKU-{uuid.uuid4().hex[:8]}", "name": "Mug", "price": 1250, "currency": "EUR"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["created_by"] == "app-123"
