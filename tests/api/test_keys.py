"""The JWKS fetch under a slow, broken or hostile issuer, and when keys are fetched at all.

Every check runs against a real JWKS server on 127.0.0.1 (``JwksServer`` in tests/conftest.py)
that can redirect, trickle its answer, send too much, or send something that is not a key set.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
import uuid

import pytest
import requests

import shopping_api.jwks as jwks_module
from logto_m2m.http import make_session
from shopping_api import create_app
from shopping_api.jwks import KeyStore, KeysUnavailable
from tests.conftest import JwksServer, api_process_env, logto_claims, new_signing_key, sign
from tests.support import ServerProcess, clean_env, free_port, gunicorn_argv

ROUTE = "/products"
DEADLINE = 0.5  # JWKS_FETCH_TIMEOUT_SECONDS for these tests
SLACK = 1.0  # scheduling noise on a busy machine (a trickling JWKS takes 15 s without the deadline)
BAD_MODES = ["redirect", "trickle", "trickle-headers", "oversize", "not-json", "no-keys", "error"]


@pytest.fixture
def database_url(tmp_path):
    return f"sqlite:///{tmp_path / 'shop.sqlite'}"


@pytest.fixture
def attacker():
    """A second JWKS server with a key of its own: where a redirect would lead."""
    server = JwksServer(new_signing_key()).start()
    yield server
    server.stop()


def build_app(api_settings, **settings):
    app = create_app({**api_settings, "JWKS_FETCH_TIMEOUT_SECONDS": DEADLINE, **settings})
    assert app.test_cli_runner().invoke(args=["init-db"]).exit_code == 0
    return app


def bearer(server: JwksServer, key) -> dict[str, str]:
    return {"Authorization": "Bearer " + sign(logto_claims(server.issuer, "read:products"), key)}


def store(server: JwksServer, **options) -> KeyStore:
    settings = {"ttl": 600, "cooldown": 30, "deadline": DEADLINE, **options}
    return KeyStore(
        endpoint=server.endpoint,
        issuer=server.issuer,
        jwks_uri=server.url,
        session=make_session(retries=0),
        **settings,
    )


def wait_until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


# -- a JWKS that cannot be used: bounded in time, never trusted, 503 for an unknown kid ----------


@pytest.mark.parametrize("mode", BAD_MODES)
def test_unusable_jwks_answers_503_within_the_deadline(
    mode, api_settings, jwks_server, signing_key, attacker, caplog
):
    caplog.set_level(logging.INFO)
    jwks_server.mode, jwks_server.redirect_to = mode, attacker.url
    started = time.monotonic()
    client = build_app(api_settings).test_client()  # the start-up load fails, and is tolerated
    assert time.monotonic() - started < DEADLINE + SLACK

    for key in (signing_key, attacker.keys[0]):
        started = time.monotonic()
        response = client.get(ROUTE, headers=bearer(jwks_server, key))
        assert time.monotonic() - started < DEADLINE + SLACK
        assert response.status_code == 503, response.get_json()
        assert response.get_json()["error"] == "temporarily_unavailable"
        assert response.get_json()["error_description"]
        assert int(response.headers["Retry-After"]) >= 1
        assert "WWW-Authenticate" not in response.headers
    assert attacker.fetch_count == 0, "a redirect was followed"
    assert "JWKS fetch failed" in caplog.text
    assert "answered 503" in caplog.text


@pytest.mark.parametrize("mode", BAD_MODES)
def test_a_request_never_waits_past_the_deadline(mode, jwks_server, attacker):
    """No keys yet, the issuer misbehaves: a lookup gives up after the deadline, not later."""
    jwks_server.mode, jwks_server.redirect_to = mode, attacker.url
    keys = store(jwks_server)
    started = time.monotonic()
    with pytest.raises(KeysUnavailable) as excinfo:
        keys.find(jwks_server.keys[0].kid)
    assert time.monotonic() - started < DEADLINE + SLACK
    assert excinfo.value.retry_after >= 1
    assert not keys.ready()


def test_a_trickling_body_ends_the_fetch_itself_at_the_deadline(jwks_server):
    """The fetch stops reading at the deadline: no thread is left reading a body forever."""
    jwks_server.mode = "trickle"
    assert store(jwks_server).load() is False
    # One read past the deadline at most (each read waits for the next byte, 50 ms here).
    wait_until(lambda: not any(t.name == "jwks-fetch" for t in threading.enumerate()), timeout=DEADLINE)


def test_cached_keys_keep_working_while_the_jwks_misbehaves(api_settings, jwks_server, signing_key):
    client = build_app(api_settings, JWKS_CACHE_TTL_SECONDS=1, JWKS_FETCH_TIMEOUT_SECONDS=5).test_client()
    jwks_server.mode = "trickle"
    time.sleep(1.1)  # the cache has expired: the refresh runs in the background, for 5 s, and fails
    for _ in range(5):
        started = time.monotonic()
        assert client.get(ROUTE, headers=bearer(jwks_server, signing_key)).status_code == 200
        assert time.monotonic() - started < 1.0, "a request waited for the background refresh"


def test_an_unknown_kid_with_the_jwks_reachable_is_still_401(api_settings, jwks_server):
    client = build_app(api_settings).test_client()
    response = client.get(ROUTE, headers=bearer(jwks_server, new_signing_key()))
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_token"


def test_a_jwks_that_recovers_is_used(api_settings, jwks_server, signing_key, monkeypatch):
    monkeypatch.setattr(jwks_module, "RETRY_AFTER_FAILURE", 0.3)
    jwks_server.mode = "error"
    app = build_app(api_settings)  # starts although the issuer is down
    client = app.test_client()
    assert not app.extensions["token_validator"].keys.ready()
    assert client.get(ROUTE, headers=bearer(jwks_server, signing_key)).status_code == 503
    jwks_server.mode = "ok"
    time.sleep(0.35)
    assert client.get(ROUTE, headers=bearer(jwks_server, signing_key)).status_code == 200
    assert app.extensions["token_validator"].keys.ready()


# -- when keys are fetched --------------------------------------------------------------------


def test_keys_are_loaded_when_the_app_starts(api_settings, jwks_server, signing_key):
    app = build_app(api_settings)
    assert jwks_server.fetch_count == 1  # before any request
    assert app.extensions["token_validator"].keys.ready()
    client = app.test_client()
    for _ in range(3):
        assert client.get(ROUTE, headers=bearer(jwks_server, signing_key)).status_code == 200
    assert jwks_server.fetch_count == 1


def test_a_key_rotated_right_after_a_fetch_is_accepted_at_once(api_settings, jwks_server, signing_key):
    """The start-up load does not start the refetch cooldown; the refetch for the new kid does."""
    client = build_app(api_settings).test_client()  # default cooldown: 30 s
    rotated = new_signing_key()
    jwks_server.publish(rotated, signing_key)
    assert client.get(ROUTE, headers=bearer(jwks_server, rotated)).status_code == 200
    assert jwks_server.fetch_count == 2
    # That refetch was caused by an unknown kid: the next unknown kid waits for the cooldown.
    again = new_signing_key()
    jwks_server.publish(again, rotated, signing_key)
    assert client.get(ROUTE, headers=bearer(jwks_server, again)).status_code == 401
    assert jwks_server.fetch_count == 2


def test_the_ttl_refresh_does_not_start_the_cooldown(jwks_server):
    clock = [0.0]
    keys = store(jwks_server, ttl=10, cooldown=30, clock=lambda: clock[0])
    assert keys.load()
    clock[0] = 11  # the cache has expired: this lookup refreshes it in the background
    assert keys.find(jwks_server.keys[0].kid) is not None
    wait_until(lambda: jwks_server.fetch_count == 2 and keys._inflight is not None and keys._inflight.done())
    rotated = new_signing_key()
    jwks_server.publish(rotated, jwks_server.keys[0])
    clock[0] = 12
    assert keys.find(rotated.kid) is not None
    assert jwks_server.fetch_count == 3


def test_a_forged_kid_flood_costs_one_fetch_per_cooldown(api_settings, jwks_server, signing_key):
    client = build_app(api_settings).test_client()
    claims = logto_claims(jwks_server.issuer, "read:products")
    for _ in range(300):
        forged = sign(claims, signing_key, {"kid": uuid.uuid4().hex})
        assert client.get(ROUTE, headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    assert jwks_server.fetch_count == 2  # the start-up load and one refetch


def test_a_forged_kid_flood_against_a_down_issuer_costs_one_fetch(api_settings, jwks_server, signing_key):
    client = build_app(api_settings).test_client()
    jwks_server.mode = "error"
    claims = logto_claims(jwks_server.issuer, "read:products")
    statuses = set()
    for _ in range(300):
        forged = sign(claims, signing_key, {"kid": uuid.uuid4().hex})
        statuses.add(client.get(ROUTE, headers={"Authorization": f"Bearer {forged}"}).status_code)
    assert statuses == {503}
    assert jwks_server.fetch_count == 2
    # The keys in hand still work.
    assert client.get(ROUTE, headers=bearer(jwks_server, signing_key)).status_code == 200


# -- under gunicorn: a slow JWKS never costs a worker -------------------------------------------


@pytest.mark.slow
def test_a_slow_jwks_never_times_out_a_gunicorn_worker(app, database_url, jwks_server, signing_key, tmp_path):
    port = free_port()
    env = api_process_env(
        jwks_server,
        database_url,
        JWKS_FETCH_TIMEOUT_SECONDS="1",
        JWKS_REFETCH_COOLDOWN_SECONDS="0",  # every unknown kid below goes to the slow JWKS
    )
    # A worker busy with one request for more than --timeout seconds is killed by gunicorn.
    argv = gunicorn_argv(port, workers=1, extra=("--timeout", "3"))
    with ServerProcess(argv, env=env, cwd=tmp_path, ready_url=f"http://127.0.0.1:{port}/healthz") as server:
        jwks_server.mode = "trickle-headers"  # now the issuer accepts, then sends a byte every 50 ms
        for _ in range(4):
            rotated = new_signing_key()  # a kid the API has never seen: it must ask the JWKS
            started = time.monotonic()
            response = requests.get(
                f"http://127.0.0.1:{port}{ROUTE}", headers=bearer(jwks_server, rotated), timeout=10
            )
            assert time.monotonic() - started < 2.5
            assert response.status_code == 503
            assert response.json()["error"] == "temporarily_unavailable"
            assert int(response.headers["Retry-After"]) >= 1
        # The worker is alive and well: a token with a key it has answers at once.
        ok = requests.get(
            f"http://127.0.0.1:{port}{ROUTE}", headers=bearer(jwks_server, signing_key), timeout=5
        )
        assert ok.status_code == 200
        log = server.log_text()
    assert "WORKER TIMEOUT" not in log
    assert "Traceback" not in log


def test_the_flask_command_fetches_no_keys(api_settings, jwks_server, tmp_path):
    """`flask init-db` and `seed` check no token: they neither fetch the JWKS nor wait for it."""
    env = clean_env(
        LOGTO_ENDPOINT=jwks_server.endpoint,
        LOGTO_JWKS_URI=jwks_server.url,
        DATABASE_URL=f"sqlite:///{tmp_path / 'shop.sqlite'}",
    )
    for command in (["init-db"], ["seed", "--orders", "10"]):
        result = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "shopping_api", *command],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
    assert jwks_server.fetch_count == 0


def test_a_password_in_the_endpoint_url_is_never_logged(caplog):
    """LOGTO_ENDPOINT may carry user:password@; the key store's log lines show it redacted."""
    port = free_port()
    keys = KeyStore(
        endpoint=f"http://user:hunter2@127.0.0.1:{port}",
        issuer=f"http://127.0.0.1:{port}/oidc",
        jwks_uri=None,
        session=make_session(retries=0),
        ttl=600,
        cooldown=30,
        deadline=1,
    )
    with caplog.at_level(logging.INFO, logger="shopping_api.jwks"):
        assert not keys.load()
    assert "discovery failed" in caplog.text
    assert "hunter2" not in caplog.text and f"http://***@127.0.0.1:{port}" in caplog.text
