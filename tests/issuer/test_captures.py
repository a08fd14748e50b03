"""Replay every token request recorded from a real Logto server and compare the answers.

The issuer runs with a tenant shaped like the recording's (same app id, same role scopes) and
with ``--endpoint`` set to the recording's ENDPOINT, so even ``iss`` and the WWW-Authenticate
realm must come out identical.
"""

from __future__ import annotations

import base64
import json

import pytest
import requests

from .conftest import CAPTURES, load_capture

APP_ID = "tpj59n63iwhnfdf664tzn"
SECRET = "capture-stats-worker-secret"
RECORDED_ENDPOINT = "http://127.0.0.1:3001"
# Which credentials each Basic-auth capture sent (the recording keeps only the outcome).
BASIC_CREDENTIALS = {
    "08-wrong-secret-basic": (APP_ID, "wrong-secret-value"),
    "11-unknown-client": ("nonexistentclient0000", "any-secret-value"),
}

TENANT = {
    "resources": [
        {
            "name": "Shopping API",
            "indicator": "https://shopping.api",
            "scopes": ["read:products", "write:products", "read:orders", "write:orders"],
        },
        {"name": "Logto Management API", "indicator": "https://default.logto.app/api", "scopes": ["all"]},
    ],
    "roles": [
        {
            "name": "stats reader",
            "type": "MachineToMachine",
            "scopes": {"https://shopping.api": ["read:products", "write:products", "read:orders"]},
        },
        {
            "name": "Logto Management API access",
            "type": "MachineToMachine",
            "scopes": {"https://default.logto.app/api": ["all"]},
        },
    ],
    "applications": [
        {"id": APP_ID, "name": "stats worker", "secret": SECRET, "roles": ["stats reader"]},
        {
            "id": "lbhu1xj468czh7g4i6ol9",
            "name": "mapi",
            "secret": "mapi-app-secret",
            "roles": ["Logto Management API access"],
        },
    ],
    "users": [],
}

CAPTURE_NAMES = sorted(path.name for path in CAPTURES.glob("token-*.json"))


@pytest.fixture(scope="module")
def recorded_tenant_issuer(tmp_path_factory):
    from .conftest import start_issuer

    root = tmp_path_factory.mktemp("captures")
    config = root / "tenant.json"
    config.write_text(json.dumps(TENANT))
    running = start_issuer(root / "state", "--config", str(config), endpoint=RECORDED_ENDPOINT)
    yield running
    running.process.stop()


def replay(issuer, request: dict, name: str) -> requests.Response:
    auth = BASIC_CREDENTIALS.get(name, (APP_ID, SECRET)) if request["auth"] == "basic" else None
    headers = dict(request["extra_headers"] or {})
    if request["form"] is not None:
        form = {
            key: SECRET if value == "<stats-worker-secret>" else value
            for key, value in request["form"].items()
        }
        return requests.post(issuer.token_url, data=form, auth=auth, headers=headers, timeout=10)
    return requests.post(
        issuer.token_url, data=request["raw_body"].encode(), auth=auth, headers=headers, timeout=10
    )


def _segment(token: str, index: int) -> dict:
    part = token.split(".")[index]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def test_every_capture_is_replayed():
    assert len(CAPTURE_NAMES) == 18


@pytest.mark.parametrize("file_name", CAPTURE_NAMES)
def test_token_endpoint_matches_logto(recorded_tenant_issuer, file_name):
    capture = load_capture(file_name)
    response = replay(recorded_tenant_issuer, capture["request"], capture["name"])

    assert response.status_code == capture["status"]
    recorded_headers = {k.lower(): v for k, v in capture["response_headers"].items()}
    assert response.headers["Cache-Control"] == recorded_headers["cache-control"] == "no-store"
    assert response.headers["Content-Type"] == recorded_headers["content-type"]
    assert response.headers.get("WWW-Authenticate") == recorded_headers.get("www-authenticate")

    body, recorded = response.json(), capture["body"]
    assert list(body) == list(recorded)  # same fields, in Logto's order
    if "error" in recorded:
        assert body == recorded  # code, message, error, error_description, word for word
        return

    assert {k: v for k, v in body.items() if k != "access_token"} == {
        k: v for k, v in recorded.items() if k != "access_token"
    }
    token = body["access_token"]
    header, claims = _segment(token, 0), _segment(token, 1)
    jwks_kid = recorded_tenant_issuer.jwks().keys[0].kid
    assert header == {**capture["jwt_header"], "kid": jwks_kid}
    assert list(header) == list(capture["jwt_header"])
    assert list(claims) == list(capture["jwt_payload"])  # exactly these claims, same order
    for claim in ("sub", "client_id", "iss", "aud", "scope"):
        assert claims.get(claim) == capture["jwt_payload"].get(claim), claim
    assert claims["exp"] - claims["iat"] == capture["jwt_payload"]["exp"] - capture["jwt_payload"]["iat"]
    assert len(claims["jti"]) == len(capture["jwt_payload"]["jti"]) == 21
    assert recorded_tenant_issuer.verify(token).claims == claims
