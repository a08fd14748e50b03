"""Access tokens exactly like Logto's, and the check the Management API subset applies to them.

A Logto M2M access token (RFC 9068 JWT; Logto fork of node-oidc-provider, lib/models/formats/jwt.js):
header ``{"alg": "ES384", "typ": "at+jwt", "kid": <RFC 7638 thumbprint>}``, claims exactly
``jti sub iat exp scope client_id iss aud`` in that order, ``sub == client_id``, one ``aud``
(the resource indicator), ``scope`` absent when nothing was granted, no ``nbf``.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwt import JWTClaimsRegistry

from .keys import ALGORITHM, SigningKeys

#: Logto's ``jti`` is a 21-character nanoid (URL-safe alphabet, ~126 random bits).
JTI_LENGTH = 21
#: Anything longer is not one of our tokens; refuse before parsing.
MAX_TOKEN_LENGTH = 8192
ACCEPTED_TYPES = ("at+jwt", "application/at+jwt")
LEEWAY_SECONDS = 30


class InvalidAccessToken(Exception):
    """The token is not a valid access token of this issuer for the expected audience."""


def new_jti() -> str:
    return secrets.token_urlsafe(16)[:JTI_LENGTH]


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int
    scope: str | None

    def response_body(self) -> dict[str, Any]:
        """The token response, field for field as Logto sends it (RFC 6749 section 5.1)."""
        body: dict[str, Any] = {
            "access_token": self.access_token,
            "expires_in": self.expires_in,
            "token_type": "Bearer",
        }
        if self.scope:
            body["scope"] = self.scope
        return body


def issue_access_token(
    keys: SigningKeys,
    *,
    issuer: str,
    client_id: str,
    audience: str,
    scopes: list[str],
    ttl: int,
    now: int | None = None,
) -> IssuedToken:
    """Sign an access token for ``client_id`` to call ``audience`` with ``scopes``."""
    issued_at = int(time.time()) if now is None else now
    claims: dict[str, Any] = {"jti": new_jti(), "sub": client_id, "iat": issued_at, "exp": issued_at + ttl}
    scope = " ".join(scopes) or None
    if scope:
        claims["scope"] = scope
    claims.update(client_id=client_id, iss=issuer, aud=audience)
    key = keys.current
    header = {"alg": ALGORITHM, "typ": "at+jwt", "kid": key.kid}
    # jws.serialize_compact keeps the header and claims in Logto's order, byte for byte; the JOSE
    # work itself (ES384 over P-384) is joserfc's. Authlib's rfc9068 generator fails on ES384.
    payload = json.dumps(claims, separators=(",", ":"))
    token = jws.serialize_compact(header, payload, key, algorithms=[ALGORITHM])
    return IssuedToken(access_token=token, expires_in=ttl, scope=scope)


def verify_access_token(keys: SigningKeys, token: str, *, issuer: str, audience: str) -> dict[str, Any]:
    """Return the claims of ``token`` if this issuer signed it for ``audience`` and it is current.

    Checks (RFC 9068 section 4, RFC 8725): size, signature by one of our keys with ES384 only,
    ``typ`` at+jwt, ``iss`` and ``aud`` exactly, ``exp`` and ``iat`` with a small leeway.
    """
    if not token or len(token) > MAX_TOKEN_LENGTH or token.count(".") != 2:
        raise InvalidAccessToken("not a compact JWS")
    try:
        decoded = jwt.decode(token, keys.key_set, algorithms=[ALGORITHM])
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise InvalidAccessToken(exc.__class__.__name__) from None
    if decoded.header.get("typ") not in ACCEPTED_TYPES:
        raise InvalidAccessToken("typ is not at+jwt")
    registry = JWTClaimsRegistry(
        leeway=LEEWAY_SECONDS,
        iss={"essential": True, "value": issuer},
        aud={"essential": True, "value": audience},
        exp={"essential": True},
        iat={"essential": True},
        sub={"essential": True},
        client_id={"essential": True},
    )
    try:
        registry.validate(decoded.claims)
    except (JoseError, ValueError, TypeError) as exc:
        raise InvalidAccessToken(exc.__class__.__name__) from None
    return decoded.claims
