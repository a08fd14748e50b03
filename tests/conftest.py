"""Fixtures shared by the whole suite.

- every test runs in its own working directory with no project setting in its environment, so a
  developer's shell or `.env` cannot change the outcome;
- ``database_url`` runs a test once on SQLite and once on PostgreSQL (when TEST_DATABASE_URL is
  set; CI sets it), each in a fresh database (a new file, or a new schema);
- token fixtures for the shopping API: a test signing key, a real JWKS server, ``make_token``;
- the ports a user's own stack listens on (3001, 3002, 8000) are taken for the whole run, so a
  test that binds or calls a fixed port fails here, not only on a machine where a compose stack,
  a real Logto or a ``local-issuer`` happens to run.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.support import clean_env, free_port, is_setting

#: Logto / the local issuer, Logto's Admin Console, the shopping API: their documented ports.
USER_PORTS = (3001, 3002, 8000)

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")


class _PortTakenBySuite(BaseHTTPRequestHandler):
    """What a test reaches when it calls one of USER_PORTS: a clear refusal, never a hang."""

    def answer(self) -> None:
        body = b'{"error": "port held by the test suite: tests must use free ports (tests/support.py)"}'
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = answer

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="session", autouse=True)
def user_ports_taken():
    """Hold USER_PORTS on 127.0.0.1 for the session; a port something else holds already stays so."""
    servers = []
    for port in USER_PORTS:
        try:
            server = ThreadingHTTPServer(("127.0.0.1", port), _PortTakenBySuite)
        except OSError:
            continue  # taken by another process: the condition this guard sets up holds anyway
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    yield USER_PORTS
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch, tmp_path):
    for name in list(os.environ):
        if is_setting(name):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def _postgres_schema_url(base_url: str):
    """Create a schema of its own for one test; yield a URL whose search_path points at it."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(base_url).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    """A fresh, empty database: SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'shop.sqlite'}"
        return
    if not TEST_DATABASE_URL:
        pytest.skip("PostgreSQL: set TEST_DATABASE_URL=postgresql+psycopg://user@host/db to run")
    yield from _postgres_schema_url(TEST_DATABASE_URL)


# -- tokens for the shopping API -----------------------------------------------------------

RESOURCE = "https://shopping.api"
APP_ID = "m2m-test-app"
ALL_SCOPES = "read:products write:products read:orders write:orders"


class JwksServer:
    """A real JWKS endpoint (plus discovery) on 127.0.0.1 that counts how often it is fetched."""

    def __init__(self, *keys):
        self.keys = list(keys)
        self.fetch_count = 0
        self.discovery_count = 0
        self.delay = 0.0  # seconds each JWKS answer takes (a slow issuer)
        #: How the JWKS answers: "ok", "redirect" (302 to ``redirect_to``), "trickle" (the body one
        #: byte every 50 ms), "trickle-headers", "oversize" (a valid JWKS padded past 64 KiB,
        #: without Content-Length), "not-json", "no-keys", "error" (HTTP 500).
        self.mode = "ok"
        self.redirect_to = ""
        self.paths: list[str] = []
        self._server = None
        self.port = free_port()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        return f"{self.endpoint}/oidc"

    @property
    def url(self) -> str:
        return f"{self.issuer}/jwks"

    def publish(self, *keys) -> None:
        """Replace the published key set (first key first, as after a Logto rotation)."""
        self.keys = list(keys)

    def start(self) -> JwksServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                owner.paths.append(self.path)
                if self.path == "/oidc/jwks":
                    owner.fetch_count += 1
                    time.sleep(owner.delay)
                    body = {"keys": [k.as_dict(private=False) for k in owner.keys]}
                    ctype = "application/jwk-set+json"
                    if owner.mode != "ok":
                        self.misbehave(json.dumps(body).encode())
                        return
                elif self.path == "/oidc/.well-known/openid-configuration":
                    owner.discovery_count += 1
                    body = {
                        "issuer": owner.issuer,
                        "jwks_uri": owner.url,
                        "token_endpoint": f"{owner.issuer}/token",
                    }
                    ctype = "application/json"
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def misbehave(self, data: bytes) -> None:
                mode = owner.mode
                if mode == "redirect":
                    self.send_response(302)
                    self.send_header("Location", owner.redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif mode == "error":
                    self.send_error(500)
                elif mode in ("trickle", "trickle-headers"):
                    self.trickle(data, headers_too=mode == "trickle-headers")
                elif mode == "oversize":
                    self.send_response(200)
                    self.send_header("Content-Type", "application/jwk-set+json")
                    self.end_headers()  # HTTP/1.0, no Content-Length: the body ends when we close
                    self.wfile.write(data[:-1] + b', "padding": "' + b"x" * (70 * 1024) + b'"}')
                else:
                    data = b"<html>not json</html>" if mode == "not-json" else b'{"issuer": "x"}'
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)

            def trickle(self, data: bytes, *, headers_too: bool) -> None:
                """One byte every 50 ms, until the client gives up or the server stops."""
                head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                head += b"Content-Length: %d\r\n\r\n" % len(data)
                if not headers_too:
                    self.wfile.write(head)
                    head = b""
                try:
                    for byte in head + data:
                        if owner._server is None:
                            return
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(0.05)
                except OSError:
                    return  # the client hung up, as it should

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        # A short poll interval: shutdown() waits for it, and every test stops a server.
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def new_signing_key(crv: str = "P-384", alg: str = "ES384"):
    """An EC key like Logto's: kid is the RFC 7638 thumbprint."""
    return ECKey.generate_key(crv, parameters={"alg": alg, "use": "sig"}, auto_kid=True)


@pytest.fixture(scope="session")
def signing_key():
    return new_signing_key()


@pytest.fixture
def jwks_server(signing_key):
    server = JwksServer(signing_key).start()
    yield server
    server.stop()


def sign(claims: dict, key, header: dict | None = None, alg: str = "ES384") -> str:
    """Sign ``claims`` with ``key``; ``header`` entries override (None removes) the defaults."""
    full_header = {"alg": alg, "typ": "at+jwt", "kid": key.kid}
    for name, value in (header or {}).items():
        if value is None:
            full_header.pop(name, None)
        else:
            full_header[name] = value
    return jwt.encode(full_header, claims, key, algorithms=[full_header.get("alg", alg)])


def logto_claims(issuer: str, scope: str | None = ALL_SCOPES, **overrides) -> dict:
    """Claims shaped exactly like a Logto M2M access token (tests/logto_captures/token-01-basic-full.json)."""
    now = int(time.time())
    claims = {
        "jti": uuid.uuid4().hex[:21],
        "sub": APP_ID,
        "iat": now,
        "exp": now + 3600,
        "scope": scope,
        "client_id": APP_ID,
        "iss": issuer,
        "aud": RESOURCE,
    }
    if scope is None:
        del claims["scope"]
    for name, value in overrides.items():
        if value is _DROP:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


_DROP = object()


@pytest.fixture
def make_token(signing_key, jwks_server):
    """``make_token(scope="read:products", key=..., header={...}, exp=..., drop=("jti",))``."""

    def _make(scope: str | None = ALL_SCOPES, *, key=None, header=None, alg="ES384", drop=(), **claims):
        claims.update(dict.fromkeys(drop, _DROP))
        return sign(logto_claims(jwks_server.issuer, scope, **claims), key or signing_key, header, alg)

    return _make


def api_process_env(jwks_server: JwksServer, database_url: str, **settings: str) -> dict[str, str]:
    """The environment of an API process: the test JWKS stands in for Logto's, the test database."""
    return clean_env(
        LOGTO_ENDPOINT=jwks_server.endpoint,
        LOGTO_JWKS_URI=jwks_server.url,
        SHOPPING_API_RESOURCE=RESOURCE,
        DATABASE_URL=database_url,
        **settings,
    )


@pytest.fixture
def api_settings(jwks_server, database_url):
    return {
        "ENV_FILE": None,
        "TESTING": True,
        "LOGTO_ENDPOINT": jwks_server.endpoint,
        "LOGTO_JWKS_URI": jwks_server.url,
        "SHOPPING_API_RESOURCE": RESOURCE,
        "DATABASE_URL": database_url,
    }


@pytest.fixture
def app(api_settings):
    from shopping_api import create_app

    application = create_app(api_settings)
    result = application.test_cli_runner().invoke(args=["init-db"])
    assert result.exit_code == 0, result.output
    return application


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def bearer(make_token):
    """``bearer("read:products")`` -> headers carrying a valid token with those scopes."""

    def _bearer(scope: str | None = ALL_SCOPES, **claims) -> dict[str, str]:
        return {"Authorization": f"Bearer {make_token(scope, **claims)}"}

    return _bearer
