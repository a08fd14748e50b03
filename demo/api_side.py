"""The resource server's half of the flow, as the demo tells it: the API's key fetch, and for a
request each check the API made of the token, with its verdict.

The values shown come from the token the demo sent and the API's settings; the verdict comes from
the API itself: its answer, and the reason it logged for that request, found in its log by the
request's ``X-Request-ID`` (gunicorn.conf.py puts the id on every line).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path

from .narration import decode_jwt

#: ``... INFO shopping_api.auth [request id] message`` (gunicorn.conf.py's text format).
APP_LINE = re.compile(r"\b(?:DEBUG|INFO|WARNING|ERROR) (shopping_api\.\w+) \[([^\]]*)\] (.*)$")
REJECTED = re.compile(r"^rejected access token: (.+?)(?: \(client [^)]*\))?$")

#: Each check of shopping_api/auth.py, and the reasons its log gives when that check fails.
CHECK_REASONS = {
    "signature": ("malformed", "bad signature"),
    "kid": ("unknown kid", "kid"),
    "typ": ("typ",),
    "alg": ("alg",),
    "exp": ("expired", "claim exp"),
    "iss": ("claim iss",),
    "aud": ("claim aud",),
    "scope": ("lacks scope", "claim scope"),
}


@dataclass
class LogLine:
    logger: str
    request_id: str
    message: str


def app_log_lines(log_path: Path, request_id: str | None = None) -> list[LogLine]:
    """The API's own lines (not gunicorn's), all of them or those of one request."""
    lines = []
    for text in log_path.read_text(encoding="utf-8", errors="replace").splitlines():
        match = APP_LINE.search(text)
        if match and (request_id is None or match.group(2) == request_id):
            lines.append(LogLine(*match.groups()))
    return lines


def failed_check(messages: list[str]) -> tuple[str, str] | None:
    """(check, reason) from a ``rejected access token: <reason>`` line, if the API logged one."""
    for message in messages:
        match = REJECTED.match(message)
        if match:
            reason = match.group(1)
            for check, reasons in CHECK_REASONS.items():
                if any(reason == r or reason.startswith(r + " ") for r in reasons):
                    return check, reason
            return "other", reason
    return None


def check_rows(
    token: str, *, issuer: str, resource: str, scope: str, failed: str | None, now: dt.datetime
) -> list[tuple[str, str, str, str]]:
    """(check, what the token says, what the API requires, verdict) for each check."""
    header, claims = decode_jwt(token)
    exp = claims.get("exp")
    expires = f"{exp} (in {exp - int(now.timestamp())} s)" if isinstance(exp, int) else json.dumps(exp)
    rows = [
        ("typ", json.dumps(header.get("typ")), '"at+jwt" (RFC 9068: an access token)'),
        ("alg", json.dumps(header.get("alg")), "one of TOKEN_ALGORITHMS, never none or HMAC"),
        ("kid", json.dumps(header.get("kid")), "a key of the issuer's JWKS"),
        ("signature", "(the third part)", "verifies with that key"),
        ("iss", json.dumps(claims.get("iss")), f"exactly {issuer}"),
        ("aud", json.dumps(claims.get("aud")), f"is or holds {resource}"),
        ("exp", expires, "not passed (30 s leeway)"),
        ("scope", json.dumps(claims.get("scope")), f"holds {scope}"),
    ]
    if failed is None:
        return [(name, value, rule, "ok") for name, value, rule in rows]
    return [(name, value, rule, "FAILED" if name == failed else "") for name, value, rule in rows]
