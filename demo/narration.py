"""How the demo prints: step headings, HTTP exchanges as they went over the wire, decoded tokens.

Secrets never reach the screen: the client secret inside ``Authorization: Basic`` is replaced by
a placeholder, and access tokens are cut to their first characters.
"""

from __future__ import annotations

import base64
import json
import shutil
import sys
import textwrap
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, TextIO
from urllib.parse import unquote_plus, urlsplit

import requests
from joserfc import jws

WIDTH = min(shutil.get_terminal_size((100, 24)).columns, 100)
INDENT = "  "
#: How much of an access token the narration shows.
TOKEN_PREVIEW = 24


class Narrator:
    """Prints the tutorial; ``out`` is anything with ``write`` (stdout by default)."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.step_number = 0

    def line(self, text: str = "", indent: int = 1) -> None:
        self.out.write((INDENT * indent + text).rstrip() + "\n")
        self.out.flush()

    def step(self, title: str, code: str = "") -> None:
        """A numbered step; ``code`` names the files that do it, for the reader to open next."""
        self.step_number += 1
        heading = f"{self.step_number}. {title}"
        self.line()
        self.line(heading, indent=0)
        self.line("-" * len(heading), indent=0)
        if code:
            self.line(f"code: {code}")

    def output(self, text: str) -> None:
        """Another program's output, marked with "|" and wrapped to the terminal."""
        for line in textwrap.wrap(text, WIDTH - 3 * len(INDENT), subsequent_indent="    ") or [""]:
            self.line("| " + line, indent=2)

    def say(self, text: str) -> None:
        """A paragraph of explanation, wrapped to the terminal."""
        for line in textwrap.wrap(text, WIDTH - len(INDENT)):
            self.line(line)

    def table(self, rows: list[tuple[str, object]], indent: int = 2) -> None:
        width = max((len(name) for name, _ in rows), default=0)
        for name, value in rows:
            self.line(f"{name.ljust(width)}  {value}", indent=indent)

    def exchange(self, response: requests.Response) -> None:
        """The request as sent and the response as received."""
        request = response.request
        for line in request_lines(request):
            self.line(line, indent=2)
        self.line()
        self.line(f"<- {response.status_code} {reason_phrase(response)}", indent=2)
        challenge = response.headers.get("WWW-Authenticate")
        if challenge:
            for line in textwrap.wrap(
                f"WWW-Authenticate: {challenge}",
                WIDTH - 3 * len(INDENT) - 3,
                subsequent_indent="    ",
                break_long_words=False,
            ):
                self.line("   " + line, indent=2)
        for line in response_lines(response):
            self.line(line, indent=3)

    def checks(self, rows: list[tuple[str, str, str, str]]) -> None:
        """The API's checks of a token: name, the token's value, the rule, the verdict."""
        name_width = max(len(row[0]) for row in rows)
        value_width = min(max(len(row[1]) for row in rows), 32)
        for name, value, rule, verdict in rows:
            shown = value if len(value) <= value_width else value[: value_width - 3] + "..."
            mark = f"  {verdict}" if verdict else ""
            self.line(f"{name.ljust(name_width)}  {shown.ljust(value_width)}  {rule}{mark}", indent=3)

    def token(self, access_token: str) -> None:
        """The JWT's header and claims, decoded (the API is the one that verifies them)."""
        header, claims = decode_jwt(access_token)
        self.line("header (decoded, not verified here: the API verifies it)", indent=2)
        self.table([(name, json.dumps(value)) for name, value in header.items()], indent=3)
        self.line("claims", indent=2)
        self.table([(name, describe_claim(name, value)) for name, value in claims.items()], indent=3)


def request_lines(request: requests.PreparedRequest) -> list[str]:
    """``POST /oidc/token HTTP/1.1``, the headers that matter, and the body, secrets hidden."""
    url = urlsplit(request.url or "")
    target = url.path + (f"?{url.query}" if url.query else "")
    lines = [f"-> {request.method} {target} HTTP/1.1", f"   Host: {url.netloc}"]
    for name in ("Authorization", "Content-Type"):
        value = _header(request, name)
        if value:
            lines.append(f"   {name}: {redact_authorization(value) if name == 'Authorization' else value}")
    body = request.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str) and body:  # a streamed body (a file, a generator) is not shown
        lines.append("")
        if _header(request, "Content-Type").startswith("application/x-www-form-urlencoded"):
            # One field a line, still URL-encoded as sent; the decoded value alongside.
            for i, field in enumerate(body.split("&")):
                name, _, value = field.partition("=")
                decoded = unquote_plus(value)
                lines.append(f"   {'&' if i else ' '}{field}")
                if decoded != value:  # what the encoded value says
                    lines.append(f"      {name} = {decoded}")
        else:
            lines.extend(f"   {line}" for line in textwrap.wrap(body, WIDTH - 12))
    return lines


def _header(request: requests.PreparedRequest, name: str) -> str:
    """A header as text (requests also allows bytes values, which HTTP sends as Latin-1)."""
    value = request.headers.get(name) or ""
    return value.decode("latin-1") if isinstance(value, bytes) else value


def reason_phrase(response: requests.Response) -> str:
    """RFC 9110's phrase for the status (servers differ in case), else what the server sent."""
    try:
        return HTTPStatus(response.status_code).phrase
    except ValueError:
        return response.reason or ""


def redact_authorization(value: str) -> str:
    scheme, _, credentials = value.partition(" ")
    if scheme.lower() == "basic":
        try:
            app_id = base64.b64decode(credentials).decode("utf-8").partition(":")[0]
        except ValueError:
            app_id = "?"
        return f"Basic base64({unquote_plus(app_id)}:<app secret, not shown>)"
    if scheme.lower() == "bearer":
        return f"Bearer {shorten_token(credentials)}"
    return f"{scheme} <hidden>"


def shorten_token(token: str) -> str:
    return f"{token[:TOKEN_PREVIEW]}... ({len(token)} characters)"


def response_lines(response: requests.Response) -> list[str]:
    try:
        body = response.json()
    except ValueError:
        return [response.text[:200]] if response.text else []
    if not isinstance(body, dict):
        return [json.dumps(body)[:200]]
    lines = []
    width = max((len(name) for name in body), default=0)
    for name, value in body.items():
        if name == "access_token" and isinstance(value, str):
            shown = shorten_token(value)
        else:
            shown = json.dumps(value)
            if len(shown) > WIDTH - width - 12:
                shown = shown[: WIDTH - width - 16] + " ..."
        lines.append(f"{name.ljust(width)}  {shown}")
    return lines


def decode_jwt(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of a compact JWS, without checking the signature."""
    obj = jws.extract_compact(token.encode("ascii"))
    return dict(obj.protected), json.loads(obj.payload)


CLAIM_NOTES = {
    "iss": "the issuer; the API compares it exactly",
    "aud": "the API resource: the request's `resource`",
    "sub": "the app's id: an M2M token has no user",
    "client_id": "the app's id",
    "scope": "what the app may do, space-separated",
    "jti": "this token's unique id",
}


def describe_claim(name: str, value: Any) -> str:
    shown = json.dumps(value)
    if name in ("iat", "exp", "nbf") and isinstance(value, int):
        shown += f"  # {datetime.fromtimestamp(value, UTC):%Y-%m-%d %H:%M:%S} UTC"
    elif name in CLAIM_NOTES:
        shown += f"  # {CLAIM_NOTES[name]}"
    return shown
