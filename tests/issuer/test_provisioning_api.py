"""The Management API routes the provisioner calls, answered as Logto OSS v1.37.1 answers them
(tests/logto_captures/mapi-*.json), and usable for tokens at once."""

from __future__ import annotations

import time

import pytest
import requests

from .conftest import MANAGEMENT, STATS_WORKER, load_capture

INDICATOR = "https://inventory.example"


class Api:
    """A Management API client for tests: ``api.post("/resources", json=...)``."""

    def __init__(self, issuer, client=STATS_WORKER) -> None:
        self.base = f"{issuer.base_url}/api"
        self.headers = {"Authorization": f"Bearer {issuer.token(client, MANAGEMENT, 'all')}"}

    def __getattr__(self, method: str):
        def call(path: str, **kwargs) -> requests.Response:
            return requests.request(method, self.base + path, headers=self.headers, timeout=10, **kwargs)

        return call


@pytest.fixture(scope="module")
def api(issuer) -> Api:
    return Api(issuer)


def provision(api: Api, indicator: str = INDICATOR) -> dict:
    """Resource with two scopes, an M2M role holding one, an app holding the role."""
    resource = api.post(
        "/resources", json={"name": "Inventory", "indicator": indicator, "accessTokenTtl": 600}
    )
    assert resource.status_code == 201, resource.text
    resource = resource.json()
    scopes = {}
    for name in ("read:stock", "write:stock"):
        response = api.post(f"/resources/{resource['id']}/scopes", json={"name": name, "description": name})
        assert response.status_code == 201, response.text
        scopes[name] = response.json()
    role = api.post(
        "/roles",
        json={
            "name": f"stock reader {indicator}",
            "description": "reads stock",
            "type": "MachineToMachine",
            "scopeIds": [scopes["read:stock"]["id"]],
        },
    )
    assert role.status_code == 200, role.text
    app = api.post("/applications", json={"name": "stock app", "type": "MachineToMachine"})
    assert app.status_code == 200, app.text
    assigned = api.post(f"/applications/{app.json()['id']}/roles", json={"roleIds": [role.json()["id"]]})
    assert assigned.status_code == 201, assigned.text
    return {
        "resource": resource,
        "scopes": scopes,
        "role": role.json(),
        "app": app.json(),
        "assigned": assigned,
    }


def same_shape(body: dict, capture: dict) -> None:
    """Same fields in the same order, and the same value for every field that is not an id or a time."""
    assert list(body) == list(capture)
    for name in (
        "tenantId",
        "isDefault",
        "type",
        "isThirdParty",
        "oidcClientMetadata",
        "protectedAppMetadata",
    ):
        if name in capture:
            assert body[name] == capture[name], name


def test_created_objects_have_logto_shapes(issuer, api):
    made = provision(api)
    same_shape(made["resource"], load_capture("mapi-create-resource.json"))
    assert made["resource"]["accessTokenTtl"] == 600
    same_shape(made["scopes"]["read:stock"], load_capture("mapi-create-scope-read_orders.json"))
    same_shape(made["role"], load_capture("mapi-create-role.json"))
    same_shape(made["app"], load_capture("mapi-create-app.json"))
    assert made["app"]["secret"].startswith("#internal:")
    assert made["assigned"].json() == {"roleIds": [made["role"]["id"]], "addedRoleIds": [made["role"]["id"]]}
    app_id = made["app"]["id"]

    got = api.get(f"/applications/{app_id}")
    same_shape(got.json(), load_capture("mapi-get-app.json"))
    secrets = api.get(f"/applications/{app_id}/secrets").json()
    same_shape(secrets[0], load_capture("mapi-app-secrets.json")[0])
    assert [s["name"] for s in secrets] == ["Default secret"]
    roles = api.get(f"/applications/{app_id}/roles").json()
    assert [r["id"] for r in roles] == [made["role"]["id"]]
    same_shape(roles[0], load_capture("mapi-app-roles.json")[0])
    role_scopes = api.get(f"/roles/{made['role']['id']}/scopes").json()
    assert [s["name"] for s in role_scopes] == ["read:stock"]
    captured = load_capture("mapi-role-scopes.json")[0]
    same_shape(role_scopes[0], captured)
    assert list(role_scopes[0]["resource"]) == list(captured["resource"])


def test_a_created_app_gets_tokens_at_once(issuer, api):
    made = provision(api, "https://tokens-at-once.example")
    app_id = made["app"]["id"]
    default_secret = api.get(f"/applications/{app_id}/secrets").json()[0]["value"]
    for secret in (default_secret, made["app"]["secret"]):  # Logto accepts both (capture token-17)
        response = issuer.token_response(
            (app_id, secret), "https://tokens-at-once.example", "read:stock write:stock"
        )
        assert response.status_code == 200, response.text
        assert response.json()["scope"] == "read:stock"  # write:stock is not the role's: dropped
        assert response.json()["expires_in"] == 600
        claims = issuer.verify(response.json()["access_token"]).claims
        assert (claims["sub"], claims["aud"]) == (app_id, "https://tokens-at-once.example")
    wrong = issuer.token_response((app_id, "not-the-secret"), "https://tokens-at-once.example")
    assert wrong.status_code == 401


@pytest.mark.parametrize(
    ("path", "body", "code", "message"),
    [
        (
            "/resources",
            {"name": "again", "indicator": "https://shopping.api"},
            "resource.resource_identifier_in_use",
            "The API identifier https://shopping.api is already in use",
        ),
        (
            "/roles",
            {"name": "Shopping reader", "description": "again", "type": "MachineToMachine"},
            "role.name_in_use",
            "This role name Shopping reader is already in use",
        ),
    ],
)
def test_duplicates_are_422(api, path, body, code, message):
    response = api.post(path, json=body)
    assert response.status_code == 422
    assert response.json() == {"code": code, "message": message}


def test_duplicate_scope_and_scope_with_space(api):
    resource = api.get("/resources").json()[0]
    existing = api.get(f"/resources/{resource['id']}/scopes").json()[0]["name"]
    duplicate = api.post(f"/resources/{resource['id']}/scopes", json={"name": existing})
    assert duplicate.status_code == 422
    assert duplicate.json() == {
        "code": "scope.name_exists",
        "message": f"The scope name {existing} is already in use",
    }
    spaced = api.post(f"/resources/{resource['id']}/scopes", json={"name": "a b"})
    assert spaced.status_code == 400
    assert spaced.json()["code"] == "scope.name_with_space"


@pytest.mark.parametrize(
    ("method", "path", "body", "table", "missing"),
    [
        ("get", "/resources/nope", None, "resources", "nope"),
        ("post", "/resources/nope/scopes", {"name": "x"}, "resources", "nope"),
        ("get", "/roles/nope", None, "roles", "nope"),
        ("post", "/roles/nope/scopes", {"scopeIds": ["s"]}, "roles", "nope"),
        ("get", "/applications/nope", None, "applications", "nope"),
        ("get", "/applications/nope/secrets", None, "applications", "nope"),
        ("post", "/applications/nope/roles", {"roleIds": ["r"]}, "applications", "nope"),
        ("post", "/applications/m2m-admin/roles", {"roleIds": ["no-such-role"]}, "roles", "no-such-role"),
        ("post", "/roles", {"name": "n", "description": "d", "scopeIds": ["no-scope"]}, "scopes", "no-scope"),
    ],
)
def test_unknown_ids_are_404_as_logto(api, method, path, body, table, missing):
    response = getattr(api, method)(path, json=body)
    assert response.status_code == 404
    assert response.json() == {
        "code": "entity.not_exists_with_id",
        "message": f"The {table} with ID `{missing}` does not exist.",
    }


def test_pagination_as_logto(issuer, api):
    all_roles = api.get("/roles", params={"page_size": 100}).json()
    assert len(all_roles) >= 3
    first = api.get("/roles", params={"page_size": 1, "type": "MachineToMachine"})
    assert first.status_code == 200
    assert len(first.json()) == 1
    total = int(first.headers["Total-Number"])
    assert total == len([r for r in all_roles if r["type"] == "MachineToMachine"])
    links = first.headers["Link"]
    assert f'<{issuer.base_url}/api/roles?page_size=1&type=MachineToMachine&page=1>; rel="first"' in links
    assert f'page={total}>; rel="last"' in links
    assert 'page=2>; rel="next"' in links and 'rel="prev"' not in links
    seen = [
        r["id"]
        for page in range(1, total + 1)
        for r in api.get("/roles", params={"page_size": 1, "page": page, "type": "MachineToMachine"}).json()
    ]
    assert len(set(seen)) == total
    # Without page or page_size a route with optional pagination answers everything, unpaged.
    unpaged = api.get("/applications")
    assert "Total-Number" not in unpaged.headers
    assert len(unpaged.json()) >= 2


@pytest.mark.parametrize("params", [{"page": "0"}, {"page_size": "101"}, {"page": "x"}, {"page_size": "-1"}])
def test_bad_pagination_is_400(api, params):
    response = api.get("/roles", params=params)
    assert response.status_code == 400
    assert response.json() == {
        "code": "guard.invalid_pagination",
        "message": "The request pagination value is invalid.",
    }


@pytest.mark.parametrize(
    ("body", "details"),
    [
        ({"indicator": "https://x.example"}, 'Error in key path "name": (invalid_type) Required'),
        (
            {"name": 5, "indicator": "https://x.example"},
            'Error in key path "name": (invalid_type) Expected string but received number.',
        ),
        ({"name": "", "indicator": "https://x.example"}, 'Error in key path "name": (too_small)'),
        (
            {"name": "x" * 129, "indicator": "https://x.example"},
            'Error in key path "name": (too_big) String must contain at most 128 character(s)',
        ),
        (
            {"name": "n", "indicator": "https://x.example", "accessTokenTtl": 0},
            'Error in key path "accessTokenTtl": (too_small) Number must be greater than or equal to 1',
        ),
        (
            {"name": "n", "indicator": "https://x.example", "accessTokenTtl": 2**31},
            'Error in key path "accessTokenTtl": (too_big) Number must be less than or equal to',
        ),
        (
            {"name": "n", "indicator": "https://x.example", "accessTokenTtl": "60"},
            'Error in key path "accessTokenTtl": (invalid_type) Expected number but received string.',
        ),
        ({"name": None, "indicator": "https://x.example"}, 'Error in key path "name": (invalid_type)'),
        ([1, 2], ""),
        ("text", ""),
    ],
)
def test_invalid_bodies_are_guard_errors(api, body, details):
    response = api.post("/resources", json=body)
    assert response.status_code == 400
    data = response.json()
    assert (data["code"], data["message"]) == ("guard.invalid_input", "The request body is invalid.")
    assert list(data) == ["code", "details", "message"]
    assert data["details"].startswith(details)


@pytest.mark.parametrize(
    "path", ["/resources", "/roles", "/applications", "/users", "/applications/m2m-admin/secrets"]
)
def test_every_route_is_guarded(issuer, path):
    response = requests.get(f"{issuer.base_url}/api{path}", timeout=10)
    assert response.status_code == 401
    assert response.json() == load_capture("mapi-err-noauth.json")


def test_users_list_and_create(api):
    created = api.post("/users", json={"username": "erin", "name": "Erin", "customData": {"tier": "gold"}})
    assert created.status_code == 200, created.text
    user = created.json()
    assert (user["username"], user["name"], user["customData"]) == ("erin", "Erin", {"tier": "gold"})
    assert api.get(f"/users/{user['id']}").json()["username"] == "erin"
    again = api.post("/users", json={"username": "erin"})
    assert again.status_code == 422
    assert again.json()["code"] == "user.username_already_in_use"
    listed = api.get("/users", params={"page_size": 100})
    assert user["id"] in [u["id"] for u in listed.json()]
    assert listed.headers["Total-Number"] == str(len(listed.json()))


@pytest.mark.parametrize(
    ("params", "names"),
    [
        ({"search.name": "Shopping reader", "mode.name": "exact"}, ["Shopping reader"]),
        ({"search.name": "shopping READER", "mode.name": "exact"}, ["Shopping reader"]),  # case-insensitive
        ({"search.name": "shopping READER", "mode.name": "exact", "isCaseSensitive": "true"}, []),
        ({"search": "%admin%"}, ["Shopping admin"]),  # like, any field: name or description
        ({"search.name": "Shopping%"}, ["Shopping reader", "Shopping admin"]),
        ({"search.name": "Shopping_admin"}, ["Shopping admin"]),  # "_": any one character
        ({"search.name": "Shopping"}, []),  # like matches the whole value
    ],
)
def test_role_search_as_logto(api, params, names):
    response = api.get("/roles", params={**params, "page_size": 100})
    assert response.status_code == 200, response.text
    assert [r["name"] for r in response.json() if not r["name"].startswith("stock reader")] == names


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"search.secret": "x"}, "Search field `secret` is not valid, expect one of id, name, description."),
        (
            {"search.name": "a", "mode.name": "posix"},
            "Search match mode `posix` is not valid, expect one of exact, like.",
        ),
        ({"search.name": ""}, "Search value cannot be empty."),
        (
            {"search.a.b": "x"},
            "Unsupported nested search field path `a.b` detected. Only the first level field is supported.",
        ),
    ],
)
def test_bad_search_is_400(api, params, reason):
    response = api.get("/roles", params=params)
    assert response.status_code == 400
    assert response.json() == {"code": "request.invalid_input", "message": f"Input is invalid. {reason}"}


def test_a_search_full_of_wildcards_is_answered_at_once(api):
    """LIKE's % and _ never backtrack exponentially (a naive regex took seconds per item)."""
    started = time.monotonic()
    response = api.get("/roles", params={"search.name": "%_" * 12 + "%!", "page_size": 100})
    assert response.status_code == 200 and response.json() == []
    assert time.monotonic() - started < 2


def test_application_search_by_name(api):
    response = api.get("/applications", params={"search.name": "Stats worker", "mode.name": "exact"})
    assert [a["id"] for a in response.json()] == ["m2m-stats-worker"]


def test_updates_take_effect_for_tokens_at_once(issuer, api):
    made = provision(api, "https://updates.example")
    app_id, role_id = made["app"]["id"], made["role"]["id"]
    secret = api.get(f"/applications/{app_id}/secrets").json()[0]["value"]
    write_id = made["scopes"]["write:stock"]["id"]

    added = api.post(f"/roles/{role_id}/scopes", json={"scopeIds": [write_id]})
    assert added.status_code == 200
    assert sorted(s["name"] for s in added.json()) == ["read:stock", "write:stock"]
    again = api.post(f"/roles/{role_id}/scopes", json={"scopeIds": [write_id]})
    assert again.status_code == 422
    assert again.json() == {
        "code": "role.scope_exists",
        "message": f"The scope id {write_id} has already been added to this role",
    }
    ttl = api.patch(f"/resources/{made['resource']['id']}", json={"accessTokenTtl": 120})
    assert (ttl.status_code, ttl.json()["accessTokenTtl"]) == (200, 120)

    token = issuer.token_response((app_id, secret), "https://updates.example", "read:stock write:stock")
    assert token.json()["scope"] == "read:stock write:stock"
    assert token.json()["expires_in"] == 120

    described = api.patch(
        f"/resources/{made['resource']['id']}/scopes/{write_id}", json={"description": "changes stock"}
    )
    assert (described.status_code, described.json()["description"]) == (200, "changes stock")
    renamed = api.patch(f"/roles/{role_id}", json={"description": "reads and writes stock"})
    assert renamed.json()["description"] == "reads and writes stock"


def test_secrets_added_and_expired(issuer, api):
    made = provision(api, "https://secrets.example")
    app_id = made["app"]["id"]
    added = api.post(f"/applications/{app_id}/secrets", json={"name": "rotation 2"})
    assert added.status_code == 201
    assert list(added.json()) == list(load_capture("mapi-app-secrets.json")[0])
    ok = issuer.token_response((app_id, added.json()["value"]), "https://secrets.example", "read:stock")
    assert ok.status_code == 200
    same_name = api.post(f"/applications/{app_id}/secrets", json={"name": "rotation 2"})
    assert (same_name.status_code, same_name.json()["code"]) == (422, "application.secret_name_exists")
    past = api.post(f"/applications/{app_id}/secrets", json={"name": "old", "expiresAt": 1})
    assert past.status_code == 400
    assert past.json() == {
        "code": "request.invalid_input",
        "message": "Input is invalid. The value of `expiresAt` must be in the future.",
    }


def test_role_and_app_types_are_checked_as_logto(api):
    user_role = api.post("/roles", json={"name": "a user role", "description": "for people"})
    assert (user_role.status_code, user_role.json()["type"]) == (200, "User")  # Logto's default type
    refused = api.post("/applications/m2m-admin/roles", json={"roleIds": [user_role.json()["id"]]})
    assert refused.status_code == 422
    assert refused.json() == {
        "code": "application.invalid_role_type",
        "message": "Can not assign user type role to machine to machine application.",
    }
    spa = api.post("/applications", json={"name": "a browser app", "type": "SPA"})
    assert spa.status_code == 200
    not_m2m = api.get(f"/applications/{spa.json()['id']}/roles")
    assert not_m2m.status_code == 422
    assert not_m2m.json()["code"] == "application.invalid_type"
    # Only machine-to-machine apps use client_credentials.
    secret = api.get(f"/applications/{spa.json()['id']}/secrets").json()[0]["value"]
    form = {"grant_type": "client_credentials", "resource": "https://shopping.api"}
    token = requests.post(
        api.base.replace("/api", "/oidc/token"), data=form, auth=(spa.json()["id"], secret), timeout=10
    )
    assert token.status_code == 400
    assert token.json()["error"] == "invalid_client"
