"""The token client against a real HTTP token endpoint that counts requests and misbehaves on cue."""

from __future__ import annotations

import base64
import datetime as dt
import logging
import threading
import time
from urllib.parse import unquote_plus
from zoneinfo import ZoneInfo

import pytest

from stats_worker.token_client import BearerAuth, TokenClient, TokenRequestError, basic_authorization
from tests.support import free_port

from .conftest import APP_ID, SECRET, quick_session
from .fakes import FakeServer, OrdersApi, Reply, make_orders

SHOP = "https://shopping.api"
SCOPES = ("read:orders", "read:products")


def token_requests(server):
    return [r for r in server.requests if r.path == "/oidc/token"]


def test_request_carries_basic_auth_and_the_form_logto_expects(logto, token_client):
    token = token_client.get_token(SHOP, SCOPES)

    assert token.startswith("tok-")
    (sent,) = token_requests(logto)
    assert sent.method == "POST"
    assert sent.headers["content-type"] == "application/x-www-form-urlencoded"
    assert sent.form == {
        "grant_type": "client_credentials",
        "resource": SHOP,
        "scope": "read:orders read:products",
    }
    scheme, _, encoded = sent.headers["authorization"].partition(" ")
    user, _, password = base64.b64decode(encoded).decode().partition(":")
    assert scheme == "Basic"
    # RFC 6749 2.3.1: each part form-urlencoded before base64, so ":" and "%" in the secret survive
    assert ":" not in password and "%" in password
    assert (unquote_plus(user), unquote_plus(password)) == (APP_ID, SECRET)


def test_basic_authorization_encodes_each_part_first():
    value = basic_authorization("app id", "p:a%ss")
    assert base64.b64decode(value.removeprefix("Basic ")) == b"app+id:p%3Aa%25ss"


def test_one_token_per_resource_and_scopes_reused(logto, token_client):
    first = token_client.get_token(SHOP, SCOPES)
    assert token_client.get_token(SHOP, "read:orders read:products") == first
    other = token_client.get_token(SHOP, ["read:orders"])
    mgmt = token_client.get_token("https://default.logto.app/api", "all")

    assert len({first, other, mgmt}) == 3
    assert [r.form.get("scope") for r in token_requests(logto)] == [
        "read:orders read:products",
        "read:orders",
        "all",
    ]


def test_token_replaced_shortly_before_expiry_and_resource_sent_again(logto, token_endpoint, token_client):
    token_endpoint.expires_in = 1  # refreshed 0.1 s early (10% of the lifetime)
    first = token_client.get_token(SHOP, SCOPES)
    assert token_client.get_token(SHOP, SCOPES) == first
    time.sleep(0.95)
    second = token_client.get_token(SHOP, SCOPES)

    assert second != first
    sent = token_requests(logto)
    assert len(sent) == 2
    assert (
        sent[1].form
        == sent[0].form
        == {"grant_type": "client_credentials", "resource": SHOP, "scope": "read:orders read:products"}
    )


def test_concurrent_callers_share_one_fetch(logto, token_endpoint, token_client):
    token_endpoint.faults.append(
        Reply(
            200,
            {
                "access_token": "slow-token",
                "expires_in": 3600,
                "token_type": "Bearer",
                "scope": "read:orders read:products",
            },
            delay=0.4,
        )
    )
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(token_client.get_token(SHOP, SCOPES)))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results == ["slow-token"] * 8
    assert len(token_requests(logto)) == 1


def test_scopes_not_granted_are_named_in_a_warning(token_endpoint, token_client, caplog):
    token_endpoint.grants[SHOP] = {"read:orders"}
    with caplog.at_level(logging.WARNING, logger="stats_worker"):
        token_client.get_token(SHOP, SCOPES)

    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "read:products" in warning.getMessage() and "role" in warning.getMessage()


def test_no_scope_granted_is_an_error_that_says_assign_a_role(token_endpoint, token_client):
    token_endpoint.grants[SHOP] = set()  # Logto then omits "scope" from the response
    with pytest.raises(TokenRequestError, match=r"granted none of the requested scopes.*role"):
        token_client.get_token(SHOP, SCOPES)


@pytest.mark.parametrize(
    ("app_id", "secret", "resource", "error", "fix"),
    [
        (APP_ID, "wrong", SHOP, "invalid_client", "LOGTO_APP_ID and LOGTO_APP_SECRET"),
        ("nobody", SECRET, SHOP, "invalid_client", "LOGTO_APP_ID and LOGTO_APP_SECRET"),
        (APP_ID, SECRET, "https://shopping.api/", "invalid_target", "trailing slash"),
    ],
)
def test_refusals_carry_logto_error_and_the_fix(logto, app_id, secret, resource, error, fix):
    client = TokenClient(logto.url + "/oidc/token", app_id, secret, session=quick_session())
    with pytest.raises(TokenRequestError) as caught:
        client.get_token(resource, SCOPES)

    message = str(caught.value)
    assert caught.value.error == error and error in message and fix in message
    assert caught.value.error_description in message
    assert secret not in message and SECRET not in message
    assert len(token_requests(logto)) == 1  # a refusal is not retried


@pytest.mark.parametrize(
    "body",
    [
        {"access_token": "t", "token_type": "mac", "expires_in": 3600},
        {"access_token": "", "token_type": "Bearer", "expires_in": 3600},
        {"token_type": "Bearer", "expires_in": 3600},
        {"access_token": "t", "token_type": "Bearer", "expires_in": "3600"},
        {"access_token": "t", "token_type": "Bearer", "expires_in": 0},
        ["not", "an", "object"],
    ],
)
def test_unusable_token_responses_are_clear_errors(token_endpoint, token_client, body):
    token_endpoint.faults.append(Reply(200, body))
    with pytest.raises(TokenRequestError, match="without a usable bearer token"):
        token_client.get_token(SHOP, SCOPES)


def test_token_without_expires_in_is_kept_a_short_while(token_endpoint, token_client):
    token_endpoint.faults.append(
        Reply(200, {"access_token": "t", "token_type": "bearer", "scope": "read:orders read:products"})
    )
    assert token_client.get_token(SHOP, SCOPES) == "t"
    assert token_client.get_token(SHOP, SCOPES) == "t"  # cached: no second request


def test_503_is_retried_then_succeeds(logto, token_endpoint, token_client):
    token_endpoint.faults.extend([Reply(503, b"busy"), Reply(503, b"busy")])
    assert token_client.get_token(SHOP, SCOPES).startswith("tok-")
    assert len(token_requests(logto)) == 3


def test_503_that_persists_is_a_clear_error(logto, token_endpoint, token_client):
    token_endpoint.faults.extend([Reply(503, b"busy")] * 4)
    with pytest.raises(TokenRequestError, match="HTTP 503"):
        token_client.get_token(SHOP, SCOPES)
    assert len(token_requests(logto)) == 4  # first try + 3 retries


def test_slow_token_endpoint_times_out_then_retries(logto, token_endpoint):
    client = TokenClient(
        logto.url + "/oidc/token",
        APP_ID,
        SECRET,
        session=quick_session(allowed_methods=("POST",), timeout=(1.0, 0.3)),
    )
    token_endpoint.faults.append(
        Reply(200, {"access_token": "late", "expires_in": 3600, "token_type": "Bearer"}, delay=0.8)
    )
    assert client.get_token(SHOP, SCOPES) != "late"
    assert len(token_requests(logto)) == 2


def test_slow_token_endpoint_that_stays_slow_is_a_clear_error(logto, token_endpoint):
    client = TokenClient(
        logto.url + "/oidc/token",
        APP_ID,
        SECRET,
        session=quick_session(allowed_methods=("POST",), retries=1, timeout=(1.0, 0.2)),
    )
    token_endpoint.faults.extend([Reply(503, delay=0.5)] * 2)
    with pytest.raises(TokenRequestError, match="cannot reach the Logto token endpoint"):
        client.get_token(SHOP, SCOPES)


def test_token_endpoint_down_then_up(token_endpoint):
    port = free_port()
    client = TokenClient(
        f"http://127.0.0.1:{port}/oidc/token",
        APP_ID,
        SECRET,
        session=quick_session(allowed_methods=("POST",), retries=5, backoff_factor=0.2),
    )
    with pytest.raises(TokenRequestError, match="cannot reach"):
        TokenClient(
            f"http://127.0.0.1:{port}/oidc/token", APP_ID, SECRET, session=quick_session(retries=0)
        ).get_token(SHOP, SCOPES)

    started: list[FakeServer] = []
    timer = threading.Timer(0.4, lambda: started.append(FakeServer(token_endpoint, port=port).__enter__()))
    timer.start()
    try:
        assert client.get_token(SHOP, SCOPES).startswith("tok-")  # connect retries span the outage
    finally:
        timer.join()
        for server in started:
            server.__exit__(None, None, None)
    assert len(started[0].requests) == 1


def test_bearer_auth_refetches_once_after_key_rotation(logto, token_endpoint, token_client):
    orders = make_orders(dt.date(2026, 11, 20), ZoneInfo("UTC"), 5)
    api = OrdersApi(token_endpoint, orders)
    auth = BearerAuth(token_client, SHOP, SCOPES)
    with FakeServer(api) as shop, quick_session() as session:
        assert session.get(shop.url + "/orders", params={"date": "2026-11-20"}, auth=auth).status_code == 200
        token_endpoint.rotate()  # every token issued so far now gets 401
        response = session.get(shop.url + "/orders", params={"date": "2026-11-20"}, auth=auth)

    assert response.status_code == 200 and len(response.json()["orders"]) == 5
    assert [r.status_code for r in response.history] == [401]
    sent = token_requests(logto)
    assert len(sent) == 2 and sent[1].form["resource"] == SHOP and sent[1].form["scope"]
    tokens = [r.headers["authorization"] for r in shop.requests]
    assert tokens[0] == tokens[1] != tokens[2]


def test_a_redirect_to_another_host_never_receives_the_token(token_endpoint, token_client):
    """requests strips the token on a cross-origin redirect; a 401 there must not bring it back."""
    with FakeServer(lambda request: Reply(401, {"error": "invalid_token"})) as elsewhere:
        moved = Reply(302, None, {"Location": elsewhere.url.replace("127.0.0.1", "localhost") + "/orders"})
        with FakeServer(lambda request: moved) as shop, quick_session() as session:
            response = session.get(shop.url + "/orders", auth=BearerAuth(token_client, SHOP, SCOPES))
    assert response.status_code == 401
    assert shop.requests[0].headers["authorization"].startswith("Bearer ")
    assert elsewhere.requests and all("authorization" not in r.headers for r in elsewhere.requests)


def test_bearer_auth_retries_only_once(token_endpoint, token_client):
    api = OrdersApi(token_endpoint, [], resource="https://other.api")  # never accepts our tokens
    with FakeServer(api) as shop, quick_session() as session:
        response = session.get(
            shop.url + "/orders", params={"date": "2026-11-20"}, auth=BearerAuth(token_client, SHOP, SCOPES)
        )
    assert response.status_code == 401
    assert len(shop.requests) == 2


def test_no_secret_or_token_in_logs(logto, token_endpoint, token_client, caplog):
    token_endpoint.grants[SHOP] = {"read:orders"}
    token_endpoint.faults.append(Reply(503, b"busy"))
    with caplog.at_level(logging.DEBUG):
        token = token_client.get_token(SHOP, SCOPES)
        token_client.invalidate(SHOP, SCOPES)
        token_client.get_token(SHOP, SCOPES)
    assert caplog.records
    text = caplog.text + repr(token_client)
    assert token not in text and SECRET not in text
    assert basic_authorization(APP_ID, SECRET).split()[1] not in text


def test_credentials_in_urls_are_redacted_in_errors_reprs_and_logs(
    logto, token_endpoint, token_client, caplog
):
    client = TokenClient(
        f"http://ops:hunter2@127.0.0.1:{free_port()}/oidc/token",
        APP_ID,
        SECRET,
        session=quick_session(retries=0),
    )
    with pytest.raises(TokenRequestError) as raised:
        client.get_token(SHOP, SCOPES)
    assert "cannot reach the Logto token endpoint http://***@127.0.0.1:" in str(raised.value)
    assert "hunter2" not in str(raised.value) + repr(client)

    api = OrdersApi(token_endpoint, [])
    with FakeServer(api) as shop, quick_session() as session:
        token_client.get_token(SHOP, SCOPES)
        token_endpoint.rotate()  # the next call gets a 401 and a logged retry
        url = shop.url.replace("http://", "http://ops:hunter2@") + "/orders"
        session.get(url, params={"date": "2026-11-20"}, auth=BearerAuth(token_client, SHOP, SCOPES))
    (line,) = [r.getMessage() for r in caplog.records if "answered 401" in r.getMessage()]
    assert line.startswith("http://***@127.0.0.1:") and "hunter2" not in caplog.text
