"""The token endpoint beyond the recorded cases: scopes, TTL, bad input of every kind, discovery."""

from __future__ import annotations

import time

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import ADMIN, MANAGEMENT, SHOPPING, STATS_WORKER

JSON_TYPE = "application/json; charset=utf-8"


def _post(issuer, body, *, auth=STATS_WORKER, content_type="application/x-www-form-urlencoded", **kwargs):
    headers = {"Content-Type": content_type} if content_type else {}
    return requests.post(issuer.token_url, data=body, auth=auth, headers=headers, timeout=10, **kwargs)


def test_discovery_names_issuer_and_endpoints(issuer):
    for path in ("/oidc/.well-known/openid-configuration", "/oidc/.well-known/oauth-authorization-server"):
        response = requests.get(issuer.base_url + path, timeout=10)
        assert response.status_code == 200
        assert response.headers["Content-Type"] == JSON_TYPE
        document = response.json()
        assert document["issuer"] == issuer.issuer
        assert document["jwks_uri"] == f"{issuer.issuer}/jwks"
        assert document["token_endpoint"] == f"{issuer.issuer}/token"
        assert document["token_endpoint_auth_methods_supported"] == [
            "client_secret_basic",
            "client_secret_post",
        ]
        assert document["grant_types_supported"] == ["client_credentials"]


def test_jwks_publishes_one_public_p384_key(issuer):
    response = requests.get(f"{issuer.base_url}/oidc/jwks", timeout=10)
    assert response.headers["Content-Type"] == "application/jwk-set+json; charset=utf-8"
    assert response.headers["Cache-Control"] == "no-cache"
    (key,) = response.json()["keys"]
    assert set(key) == {"kty", "use", "kid", "alg", "crv", "x", "y"}  # no "d": public half only
    assert (key["kty"], key["crv"], key["alg"], key["use"]) == ("EC", "P-384", "ES384", "sig")
    assert key["kid"] == issuer.jwks().keys[0].thumbprint()  # RFC 7638 thumbprint


@pytest.mark.parametrize(
    ("client", "resource", "requested", "granted"),
    [
        (STATS_WORKER, SHOPPING, "read:orders read:products", "read:orders read:products"),
        (STATS_WORKER, SHOPPING, "read:orders write:orders", "read:orders"),
        (STATS_WORKER, SHOPPING, "write:orders", None),
        (STATS_WORKER, SHOPPING, None, None),
        (STATS_WORKER, SHOPPING, "read:orders read:orders", "read:orders"),
        (STATS_WORKER, SHOPPING, "READ:ORDERS", None),  # scopes are case-sensitive
        (STATS_WORKER, MANAGEMENT, "all", "all"),
        (
            ADMIN,
            SHOPPING,
            "write:products write:orders read:orders",
            "write:products write:orders read:orders",
        ),
        (ADMIN, MANAGEMENT, "all", None),  # a known resource the app holds nothing of: a token, no scope
    ],
)
def test_scopes_granted_are_requested_and_held(issuer, client, resource, requested, granted):
    response = issuer.token_response(client, resource, requested)
    assert response.status_code == 200
    body = response.json()
    claims = issuer.verify(body["access_token"]).claims
    assert body.get("scope") == claims.get("scope") == granted
    assert ("scope" in body) == ("scope" in claims) == (granted is not None)
    assert claims["aud"] == resource
    assert claims["sub"] == claims["client_id"] == client[0]
    assert claims["iss"] == issuer.issuer


def test_token_lifetime_comes_from_the_resource(issuer_factory, tmp_path):
    config = tmp_path / "short.yaml"
    config.write_text(
        "resources:\n"
        "  - {name: Short, indicator: 'https://short.api', accessTokenTtl: 120, scopes: [read]}\n"
        "  - {name: Default, indicator: 'https://default-ttl.api', scopes: [read]}\n"
        "roles:\n"
        "  - {name: reader, type: MachineToMachine, scopes: {'https://short.api': [read]}}\n"
        "applications:\n"
        "  - {id: short-app, secret: short-app-secret, roles: [reader]}\n"
    )
    running = issuer_factory("--config", str(config))
    before = int(time.time())
    body = running.token_response(("short-app", "short-app-secret"), "https://short.api", "read").json()
    claims = running.verify(body["access_token"]).claims
    assert body["expires_in"] == 120
    assert claims["exp"] - claims["iat"] == 120
    assert before - 1 <= claims["iat"] <= int(time.time()) + 1
    default = running.token_response(("short-app", "short-app-secret"), "https://default-ttl.api").json()
    assert default["expires_in"] == 3600


def test_same_resource_twice_is_one_resource(issuer):
    response = requests.post(
        issuer.token_url,
        auth=STATS_WORKER,
        timeout=10,
        data=[
            ("grant_type", "client_credentials"),
            ("resource", SHOPPING),
            ("resource", SHOPPING),
            ("scope", "read:orders"),
        ],
    )
    assert response.status_code == 200
    assert issuer.verify(response.json()["access_token"]).claims["aud"] == SHOPPING


def test_scopes_are_separated_by_spaces_only(issuer):
    body = issuer.token_response(STATS_WORKER, SHOPPING, "read:orders\tread:products  read:products").json()
    assert body["scope"] == "read:products"  # "read:orders\tread:products" is one (unknown) scope


def test_client_secret_post_gives_the_same_token(issuer):
    response = requests.post(
        issuer.token_url,
        timeout=10,
        data={
            "grant_type": "client_credentials",
            "resource": SHOPPING,
            "scope": "read:orders",
            "client_id": STATS_WORKER[0],
            "client_secret": STATS_WORKER[1],
        },
    )
    assert response.status_code == 200
    assert issuer.verify(response.json()["access_token"]).claims["sub"] == STATS_WORKER[0]


def test_resource_in_the_query_string_is_ignored(issuer):
    response = requests.post(
        f"{issuer.token_url}?resource={SHOPPING}",
        timeout=10,
        auth=STATS_WORKER,
        data={"grant_type": "client_credentials"},
    )
    assert response.status_code == 400
    assert response.json()["error_description"] == "both `resource` and `organization_id` are not provided"


def test_each_token_has_its_own_jti(issuer):
    jtis = {issuer.verify(issuer.token()).claims["jti"] for _ in range(20)}
    assert len(jtis) == 20
    assert all(len(jti) == 21 for jti in jtis)


HUGE = b"grant_type=client_credentials&resource=https://shopping.api&scope=" + b"a" * 70_000

BAD_REQUESTS = [
    # (id, body, content type, auth, status, error, description)
    (
        "missing grant_type",
        b"resource=https://shopping.api",
        "application/x-www-form-urlencoded",
        STATS_WORKER,
        400,
        "invalid_request",
        "missing required parameter 'grant_type'",
    ),
    (
        "empty body",
        b"",
        "application/x-www-form-urlencoded",
        STATS_WORKER,
        400,
        "invalid_request",
        "missing required parameter 'grant_type'",
    ),
    (
        "unsupported grant",
        b"grant_type=authorization_code&code=x",
        "application/x-www-form-urlencoded",
        STATS_WORKER,
        400,
        "unsupported_grant_type",
        "unsupported grant_type requested",
    ),
    (
        "two resources",
        b"grant_type=client_credentials&resource=https://shopping.api&resource=https://default.logto.app/api",
        "application/x-www-form-urlencoded",
        STATS_WORKER,
        400,
        "invalid_target",
        "only a single resource indicator value is supported for this grant type",
    ),
    (
        "two resources, one unknown",
        b"grant_type=client_credentials&resource=https://shopping.api&resource=https://unknown.api",
        "application/x-www-form-urlencoded",
        STATS_WORKER,
        400,
        "invalid_target",
        "resource indicator is missing, or unknown",
    ),
    (
        "trailing slash is another resource",
        b"grant_type=client_credentials&resource=https://shopping.api/",
        "application/x-www-form-urlencoded",
        STATS_WORKER,
        400,
        "invalid_target",
        "resource indicator is missing, or unknown",
    ),
    (
        "empty resource",
        b"grant_type=client_credentials&resource=",
        "application/x-www-form-urlencoded",
        STATS_WORKER,
        400,
        "invalid_target",
        "both `resource` and `organization_id` are not provided",
    ),
    (
        "grant_type twice",
        b"grant_type=client_credentials&grant_type=client_credentials",
        "application/x-www-form-urlencoded",
        STATS_WORKER,
        400,
        "invalid_request",
        "'grant_type' parameter must not be provided twice",
    ),
    (
        "huge body",
        HUGE,
        "application/x-www-form-urlencoded",
        STATS_WORKER,
        400,
        "invalid_request",
        "failed to parse the request body",
    ),
    (
        "raw non-UTF-8",
        b"grant_type=client_credentials&scope=\xff\xfe",
        "application/x-www-form-urlencoded",
        STATS_WORKER,
        400,
        "invalid_request",
        "failed to parse the request body",
    ),
    (
        "escaped non-UTF-8",
        b"grant_type=client_credentials&scope=%ff%fe",
        "application/x-www-form-urlencoded",
        STATS_WORKER,
        400,
        "invalid_request",
        "failed to parse the request body",
    ),
    (
        "invalid JSON",
        b'{"grant_type": "client_credentials",',
        "application/json",
        STATS_WORKER,
        400,
        "invalid_request",
        "failed to parse the request body",
    ),
    (
        "JSON array",
        b'["grant_type"]',
        "application/json",
        STATS_WORKER,
        400,
        "invalid_request",
        "failed to parse the request body",
    ),
    (
        "JSON lone surrogate in the secret",
        b'{"grant_type": "client_credentials", "client_id": "m2m-admin", "client_secret": "\\ud800"}',
        "application/json",
        None,
        400,
        "invalid_request",
        "failed to parse the request body",
    ),
    (
        "JSON number value",
        b'{"grant_type": 1}',
        "application/json",
        STATS_WORKER,
        400,
        "invalid_request",
        "failed to parse the request body",
    ),
    (
        "other content type",
        b"<grant_type/>",
        "application/xml",
        STATS_WORKER,
        400,
        "invalid_request",
        "only application/x-www-form-urlencoded or application/json content-type bodies "
        "are supported on POST /token",
    ),
    (
        "basic with another client_id in the body",
        b"grant_type=client_credentials&resource=https://shopping.api&client_id=m2m-admin",
        "application/x-www-form-urlencoded",
        STATS_WORKER,
        400,
        "invalid_request",
        "mismatch in body and authorization client ids",
    ),
    (
        "client_id without secret",
        b"grant_type=client_credentials&client_id=m2m-admin",
        "application/x-www-form-urlencoded",
        None,
        401,
        "invalid_client",
        "client authentication failed",
    ),
    (
        "unknown client with odd characters",
        b"grant_type=client_credentials&client_id=%22%5C%E2%82%AC&client_secret=x",
        "application/x-www-form-urlencoded",
        None,
        400,
        "invalid_client",
        "invalid client ???",
    ),
]


@pytest.mark.parametrize(
    ("body", "content_type", "auth", "status", "error", "description"),
    [case[1:] for case in BAD_REQUESTS],
    ids=[case[0] for case in BAD_REQUESTS],
)
def test_bad_requests_get_logto_errors(issuer, body, content_type, auth, status, error, description):
    response = _post(issuer, body, auth=auth, content_type=content_type)
    assert response.status_code == status
    assert response.headers["Content-Type"] == JSON_TYPE
    assert response.headers["Cache-Control"] == "no-store"
    assert response.json() == {
        "code": f"oidc.{error}",
        "message": {
            "invalid_request": "Request is invalid.",
            "invalid_target": "Invalid resource indicator.",
            "unsupported_grant_type": "Unsupported `grant_type` requested.",
        }.get(error, f"An OIDC error occurred: oidc.{error}."),
        "error": error,
        "error_description": description,
    }


@pytest.mark.parametrize(
    "header",
    [
        "Basic",
        "Basic !!!notbase64",
        "Basic " + "bm9jb2xvbg==",
        "Bearer abc",
        "Basic a b",
    ],
)
def test_malformed_authorization_header(issuer, header):
    response = requests.post(
        issuer.token_url,
        headers={"Authorization": header},
        timeout=10,
        data={"grant_type": "client_credentials", "resource": SHOPPING},
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert response.json()["error_description"] == "invalid authorization header value format"


def test_basic_credentials_are_form_decoded(issuer_factory, tmp_path):
    # RFC 6749 section 2.3.1: id and secret are form-encoded before base64.
    config = tmp_path / "odd.yaml"
    config.write_text(
        "resources: [{name: A, indicator: 'https://a.api', scopes: [x]}]\n"
        "roles: [{name: r, scopes: {'https://a.api': [x]}}]\n"
        "applications: [{id: odd-app, secret: 'p@ss:w rd+%', roles: [r]}]\n"
    )
    running = issuer_factory("--config", str(config))
    response = running.token_response(("odd-app", "p%40ss%3Aw+rd%2B%25"), "https://a.api", "x")
    assert response.status_code == 200
    assert response.json()["scope"] == "x"


def test_only_post_is_served(issuer):
    response = requests.get(issuer.token_url, timeout=10)
    assert response.status_code == 404
    assert (
        response.json()["error_description"]
        == "unrecognized route or not allowed method (GET on /oidc/token)"
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.binary(max_size=300),
    content_type=st.sampled_from(["application/x-www-form-urlencoded", "application/json", "text/plain", ""]),
)
def test_arbitrary_bodies_never_cause_a_server_error(issuer, body, content_type):
    response = _post(issuer, body, content_type=content_type or None)
    assert response.status_code in (200, 400, 401)
    assert response.headers["Content-Type"] == JSON_TYPE
    assert "error" in response.json() or "access_token" in response.json()
