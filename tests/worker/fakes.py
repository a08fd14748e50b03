"""Real HTTP servers on 127.0.0.1 that play Logto's token endpoint and the shopping API, and can
misbehave on purpose (503, slow answers, resets mid-body, 429 with Retry-After, key rotation).

They speak the contract's wire format (token responses shaped like the captures in
tests/logto_captures/, orders pages like the shopping API's) and record every request they get.
"""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import json
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote_plus, urlsplit


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    @property
    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode(), keep_blank_values=True).items()}

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # JSON-ready data, or bytes
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering (a slow server)
    reset_after: int | None = None  # send this many body bytes, then reset the connection
    stall_after: int | None = None  # send this many body bytes, then nothing for stall_seconds
    stall_seconds: float = 3.0

    def payload(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        return b"" if self.body is None else json.dumps(self.body).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def _serve(self) -> None:
        server: FakeServer = self.server.owner  # type: ignore[attr-defined]  # set on the httpd below
        length = int(self.headers.get("Content-Length") or 0)
        parts = urlsplit(self.path)
        record = Recorded(
            self.command,
            parts.path,
            {k: v[0] for k, v in parse_qs(parts.query).items()},
            {k.lower(): v for k, v in self.headers.items()},
            self.rfile.read(length),
        )
        with server.lock:
            server.requests.append(record)
        reply = server.handler(record)
        if reply.delay:
            time.sleep(reply.delay)
        payload = reply.payload()
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if reply.stall_after is not None:
                self.wfile.write(payload[: reply.stall_after])
                self.wfile.flush()
                time.sleep(reply.stall_seconds)  # headers and part of the body are out: silence
                self.close_connection = True
                return
            if reply.reset_after is not None:
                self.wfile.write(payload[: reply.reset_after])
                self.wfile.flush()
                # SO_LINGER 0: close() sends RST, the client sees the body break off.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                return
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve


class FakeServer:
    """A threaded HTTP server calling ``handler(Recorded) -> Reply`` for every request."""

    def __init__(self, handler: Callable[[Recorded], Reply], *, port: int = 0) -> None:
        self.handler = handler
        self.requests: list[Recorded] = []
        self.lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.owner = self  # type: ignore[attr-defined]  # our own attribute, read by the handler
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True)

    def __enter__(self) -> FakeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def count(self, path: str) -> int:
        return sum(1 for r in self.requests if r.path == path)


class TokenEndpoint:
    """Logto's ``/oidc/token`` for client_credentials: Basic auth, RFC 8707 resource, scope filtering.

    ``faults`` is a queue of replies served instead of a token, one per request, before normal
    service resumes. ``rotate()`` makes every token issued so far invalid (a signing-key rotation).
    """

    def __init__(
        self,
        app_id: str = "m2m-test",
        secret: str = "s3cret",
        *,
        grants: dict[str, set[str]] | None = None,
        expires_in: int = 3600,
    ) -> None:
        self.app_id = app_id
        self.secret = secret
        self.grants = (
            grants
            if grants is not None
            else {
                "https://shopping.api": {"read:orders", "read:products"},
                "https://default.logto.app/api": {"all"},
            }
        )
        self.expires_in = expires_in
        self.faults: deque[Reply] = deque()
        self.issued: dict[str, tuple[str, set[str]]] = {}  # token -> (resource, scopes)
        self._serial = itertools.count(1)

    def valid(self, token: str, resource: str) -> bool:
        entry = self.issued.get(token)
        return entry is not None and entry[0] == resource

    def rotate(self) -> None:
        self.issued.clear()

    def __call__(self, request: Recorded) -> Reply:
        if request.path != "/oidc/token" or request.method != "POST":
            return Reply(404, {"error": "not_found"})
        if self.faults:
            return self.faults.popleft()
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Basic "):
            return _oidc_error(400, "invalid_request", "no client authentication mechanism provided")
        user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
        if unquote_plus(user) != self.app_id:
            return _oidc_error(400, "invalid_client", f"invalid client {unquote_plus(user)}")
        if unquote_plus(password) != self.secret:
            return _oidc_error(401, "invalid_client", "client authentication failed")
        form = request.form
        if form.get("grant_type") != "client_credentials":
            return _oidc_error(400, "unsupported_grant_type", "unsupported grant_type requested")
        resource = form.get("resource")
        if not resource:
            return _oidc_error(
                400, "invalid_target", "both `resource` and `organization_id` are not provided"
            )
        if resource not in self.grants:
            return _oidc_error(400, "invalid_target", "resource indicator is missing, or unknown")
        granted = [s for s in form.get("scope", "").split() if s in self.grants[resource]]
        token = f"tok-{next(self._serial)}-{resource}"
        self.issued[token] = (resource, set(granted))
        body = {"access_token": token, "expires_in": self.expires_in, "token_type": "Bearer"}
        if granted:
            body["scope"] = " ".join(granted)
        return Reply(200, body, {"Cache-Control": "no-store"})


def _oidc_error(status: int, error: str, description: str) -> Reply:
    return Reply(
        status,
        {
            "code": f"oidc.{error}",
            "message": "An OIDC error occurred.",
            "error": error,
            "error_description": description,
        },
    )


def make_orders(
    day: dt.date,
    tz: dt.tzinfo,
    count: int,
    *,
    customers: int = 7,
    currencies: tuple[str, ...] = ("EUR", "USD", "JPY"),
) -> list[dict[str, Any]]:
    """``count`` orders spread over ``day`` in ``tz``, sorted like the API sorts them."""
    start = dt.datetime.combine(day, dt.time(), tz).astimezone(dt.UTC)
    seconds = int(
        (
            dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tz).astimezone(dt.UTC) - start
        ).total_seconds()
    )
    orders = []
    for n in range(count):
        currency = currencies[n % len(currencies)]
        items = [
            {
                "product_id": 1 + (n * 7 + k) % 13,
                "sku": f"SKU-{1 + (n * 7 + k) % 13}",
                "name": f"Product {1 + (n * 7 + k) % 13}",
                "quantity": 1 + (n + k) % 4,
                "unit_price": 199 + 100 * ((n * 7 + k) % 13),
            }
            for k in range(1 + n % 3)
        ]
        created = start + dt.timedelta(seconds=(n * 7919) % seconds, microseconds=n % 1000)
        orders.append(
            {
                "id": n + 1,
                "customer_id": f"user-{n % customers}",
                "currency": currency,
                "total": sum(i["quantity"] * i["unit_price"] for i in items),
                "created_at": created.isoformat(),
                "created_by": "m2m-admin",
                "items": items,
            }
        )
    orders.sort(key=lambda o: (o["created_at"], o["id"]))
    return orders


class OrdersApi:
    """The shopping API's ``GET /orders`` over a fixed list, guarded by ``TokenEndpoint`` tokens.

    ``faults`` maps a request number (1-based, counting every /orders request) to a Reply.
    """

    def __init__(
        self, tokens: TokenEndpoint, orders: list[dict[str, Any]], *, resource: str = "https://shopping.api"
    ) -> None:
        self.tokens = tokens
        self.orders = orders
        self.resource = resource
        self.faults: dict[int, Reply] = {}
        self.served = 0

    def __call__(self, request: Recorded) -> Reply:
        if request.path != "/orders":
            return Reply(404, {"error": "not_found", "error_description": "no such route"})
        self.served += 1
        if self.served in self.faults:
            return self.faults[self.served]
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or not self.tokens.valid(auth[7:], self.resource):
            return Reply(
                401,
                {"error": "invalid_token", "error_description": "token rejected"},
                {"WWW-Authenticate": 'Bearer realm="shopping-api", error="invalid_token"'},
            )
        limit = int(request.query.get("limit", 100))
        start = int(request.query.get("cursor", 0))
        page = self.orders[start : start + limit]
        more = start + limit < len(self.orders)
        return Reply(
            200,
            {
                "date": request.query["date"],
                "tz": request.query.get("tz", "UTC"),
                "orders": page,
                "next_cursor": str(start + limit) if more else None,
            },
        )


MGMT = "https://default.logto.app/api"


class ManagementApi:
    """Logto's ``/api/users/{id}/custom-data``: GET, and PATCH merging top-level keys."""

    def __init__(self, tokens: TokenEndpoint, users: dict[str, dict]) -> None:
        self.tokens = tokens
        self.users = users
        self.forbidden = False
        self.failing: Reply | None = None  # served to every request while set (Logto failing)
        self.user_faults: dict[str, Reply] = {}  # served for one user's requests

    def __call__(self, request: Recorded) -> Reply:
        if self.failing is not None:
            return self.failing
        auth = request.headers.get("authorization", "")
        if not self.tokens.valid(auth.removeprefix("Bearer "), MGMT):
            return Reply(401, {"code": "auth.unauthorized", "message": "Unauthorized."})
        if self.forbidden:
            return Reply(403, {"code": "auth.forbidden", "message": "Forbidden."})
        parts = request.path.split("/")  # "", "api", "users", id, "custom-data"
        user = parts[3] if len(parts) == 5 and parts[4] == "custom-data" else None
        if user in self.user_faults:
            return self.user_faults[user]
        if user not in self.users:  # as recorded from Logto OSS 1.37.1
            return Reply(404, {"code": "entity.not_found", "message": "The resource does not exist."})
        if request.method == "PATCH":
            self.users[user].update(request.json["customData"])
        return Reply(200, self.users[user])


class Logto:
    """Logto's token endpoint and Management API on one server, as LOGTO_ENDPOINT serves both."""

    def __init__(self, tokens: TokenEndpoint, management: ManagementApi) -> None:
        self.tokens = tokens
        self.management = management

    def __call__(self, request: Recorded) -> Reply:
        return self.management(request) if request.path.startswith("/api/") else self.tokens(request)


class Forward:
    """Passes every request on to ``target`` (a real server) and returns its answer unchanged,
    so a test can see exactly what the worker sent to the real local issuer."""

    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")

    def __call__(self, request: Recorded) -> Reply:
        import requests

        headers = {
            k: v for k, v in request.headers.items() if k in ("authorization", "content-type", "accept")
        }
        answer = requests.request(
            request.method,
            self.target + request.path,
            params=request.query,
            data=request.body,
            headers=headers,
            timeout=10,
        )
        return Reply(
            answer.status_code,
            answer.content,
            {k: v for k, v in answer.headers.items() if k.lower() in ("cache-control", "www-authenticate")},
        )
