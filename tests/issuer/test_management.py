"""The Management API subset: Logto's guard (401/403), 404 for unknown users, custom data merge."""

from __future__ import annotations

import json
import threading
import time

import pytest
import requests
from joserfc import jws
from joserfc.jwk import ECKey, KeySet

from .conftest import ADMIN, MANAGEMENT, STATS_WORKER, load_capture


def _get(issuer, path, token=None, headers=None):
    headers = dict(headers or {})
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return requests.get(f"{issuer.base_url}/api{path}", headers=headers, timeout=10)


def _patch(issuer, path, token, body):
    return requests.patch(
        f"{issuer.base_url}/api{path}", headers={"Authorization": f"Bearer {token}"}, json=body, timeout=10
    )


@pytest.fixture(scope="module")
def mgmt_token(issuer):
    return issuer.token(STATS_WORKER, MANAGEMENT, "all")


def _sign(key: ECKey, claims: dict, **header) -> str:
    header = {"alg": "ES384", "typ": "at+jwt", "kid": key.kid, **header}
    return jws.serialize_compact(header, json.dumps(claims), key, algorithms=["ES384"])


def _own_key(issuer) -> ECKey:
    """The issuer's private key, read from its state dir (to forge tokens it would have signed)."""
    data = json.loads((issuer.state_dir / "signing-keys.json").read_text())
    return KeySet.import_key_set(data).keys[0]


def _claims(issuer, **overrides):
    now = int(time.time())
    claims = {
        "jti": "abcdefghijklmnopqrstu",
        "sub": STATS_WORKER[0],
        "iat": now,
        "exp": now + 600,
        "scope": "all",
        "client_id": STATS_WORKER[0],
        "iss": issuer.issuer,
        "aud": MANAGEMENT,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def test_missing_header_matches_logto(issuer):
    response = _get(issuer, "/users/user-alice")
    assert response.status_code == 401
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.json() == load_capture("mapi-err-noauth.json")


def test_token_without_all_scope_matches_logto(issuer):
    # m2m-admin holds no Management API role: Logto still issues a token, without scope.
    token = issuer.token(ADMIN, MANAGEMENT, "all")
    response = _get(issuer, "/users/user-alice", token)
    assert response.status_code == 403
    assert response.json() == load_capture("mapi-err-mgmt-aud-no-scope.json")


def test_token_for_another_resource_is_unauthorized(issuer):
    response = _get(issuer, "/users/user-alice", issuer.token(STATS_WORKER))
    assert response.status_code == 401
    assert (
        response.json()["code"] == load_capture("mapi-err-shopping-aud.json")["code"] == "auth.unauthorized"
    )
    assert response.json()["message"] == load_capture("mapi-err-shopping-aud.json")["message"]


BAD_TOKENS = {
    "garbage": lambda issuer, key: "garbage",
    "expired": lambda issuer, key: _sign(
        key, _claims(issuer, iat=int(time.time()) - 7200, exp=int(time.time()) - 3600)
    ),
    "issued in the future": lambda issuer, key: _sign(key, _claims(issuer, iat=int(time.time()) + 3600)),
    "other issuer": lambda issuer, key: _sign(key, _claims(issuer, iss="https://evil.example/oidc")),
    "no exp": lambda issuer, key: _sign(key, _claims(issuer, exp=None)),
    "typ JWT": lambda issuer, key: _sign(key, _claims(issuer), typ="JWT"),
    "foreign key, same kid": lambda issuer, key: _sign(
        ECKey.import_key(ECKey.generate_key("P-384").as_dict(private=True), parameters={"kid": key.kid}),
        _claims(issuer),
    ),
    "alg none": lambda issuer, key: (
        "eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0." + _sign(key, _claims(issuer)).split(".")[1] + "."
    ),
}


@pytest.mark.parametrize("case", list(BAD_TOKENS))
def test_bad_tokens_are_unauthorized(issuer, case):
    token = BAD_TOKENS[case](issuer, _own_key(issuer))
    response = _get(issuer, "/users/user-alice", token)
    assert response.status_code == 401
    assert response.json() == {
        "code": "auth.unauthorized",
        "message": "Unauthorized. Please check credentials and its scope.",
    }


def test_forged_token_with_own_key_is_accepted(issuer):
    # The control for the table above: the same construction with nothing wrong passes.
    assert _get(issuer, "/users/user-alice", _sign(_own_key(issuer), _claims(issuer))).status_code == 200


def test_other_scheme_is_not_supported(issuer, mgmt_token):
    response = _get(issuer, "/users/user-alice", headers={"Authorization": f"Basic {mgmt_token}"})
    assert response.status_code == 401
    assert response.json() == {
        "code": "auth.authorization_token_type_not_supported",
        "message": "Authorization type is not supported.",
    }


@pytest.mark.parametrize("path", ["/users/user-nobody", "/users/user-nobody/custom-data"])
def test_unknown_user_is_404(issuer, mgmt_token, path):
    response = _get(issuer, path, mgmt_token)
    assert response.status_code == 404
    # Logto OSS v1.37.1 for an unknown user (its user queries' NotFoundError -> entity.not_found).
    assert response.json() == {"code": "entity.not_found", "message": "The resource does not exist."}
    patch = _patch(issuer, "/users/user-nobody/custom-data", mgmt_token, {"customData": {"a": 1}})
    assert patch.status_code == 404


def test_get_user(issuer, mgmt_token):
    response = _get(issuer, "/users/user-bob", mgmt_token)
    assert response.status_code == 200
    user = response.json()
    assert (user["id"], user["name"], user["customData"]) == ("user-bob", "Bob", {})
    assert isinstance(user["createdAt"], int)


def test_patch_merges_top_level_keys(issuer, mgmt_token):
    first = _patch(
        issuer,
        "/users/user-carol/custom-data",
        mgmt_token,
        {"customData": {"shopping": {"2026-11-20": {"orders": 2}}, "theme": "dark"}},
    )
    assert first.status_code == 200
    second = _patch(
        issuer,
        "/users/user-carol/custom-data",
        mgmt_token,
        {"customData": {"shopping": {"2026-11-21": {"orders": 1}}}},
    )
    # Top-level merge: "theme" stays, the nested "shopping" object is replaced, not deep-merged.
    expected = {"shopping": {"2026-11-21": {"orders": 1}}, "theme": "dark"}
    assert second.json() == expected
    assert _get(issuer, "/users/user-carol/custom-data", mgmt_token).json() == expected
    assert _get(issuer, "/users/user-carol", mgmt_token).json()["customData"] == expected


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"customData": []}',
        b'{"customData": "x"}',
        b'{"other": {}}',
        b'{"customData": {}, "extra": 1}',
        b"\xff\xfe",
        b'{"customData": {"a": NaN}}',
        b'{"customData": {"a": 1e999}}',
        b'{"customData": {"a": -Infinity}}',
        b'{"customData": {"a": ' + b"[" * 200 + b"]" * 200 + b"}}",
        b'{"customData": {"a": ' + b"[" * 5000 + b"]" * 5000 + b"}}",
    ],
)
def test_bad_patch_bodies_are_400(issuer, mgmt_token, body):
    response = requests.patch(
        f"{issuer.base_url}/api/users/user-dave/custom-data",
        data=body,
        timeout=10,
        headers={"Authorization": f"Bearer {mgmt_token}", "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["code"] == "guard.invalid_input"
    # Nothing was stored: the user is still served as before.
    assert _get(issuer, "/users/user-dave", mgmt_token).status_code == 200


def test_concurrent_patches_lose_no_key(issuer, mgmt_token):
    def patch(i):
        assert _patch(issuer, "/users/user-dave/custom-data", mgmt_token, {"customData": {f"k{i}": i}}).ok

    threads = [threading.Thread(target=patch, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    data = _get(issuer, "/users/user-dave/custom-data", mgmt_token).json()
    assert {f"k{i}": i for i in range(20)}.items() <= data.items()


def test_custom_data_survives_a_restart(issuer_factory):
    first = issuer_factory()
    token = first.token(STATS_WORKER, MANAGEMENT, "all")
    assert _patch(first, "/users/user-alice/custom-data", token, {"customData": {"kept": True}}).ok
    first.process.stop()
    second = issuer_factory(port=first.port)  # same port, same issuer: the old token stays valid
    assert _get(second, "/users/user-alice/custom-data", token).json() == {"kept": True}
