"""Checking Logto access tokens: the whole resource-server side of the M2M flow in one module.

A request is let through only if its ``Authorization: Bearer`` token is a JWT access token
(RFC 9068) that Logto signed for this API, and that carries the scope the route needs. Authlib's
``ResourceProtector`` and ``rfc9068.JWTBearerTokenValidator`` provide the structure; three things
stock Authlib gets wrong for Logto are overridden here (the README's "Token checks" says more):
the algorithm list (Logto signs ES384 by default), the required ``typ: at+jwt``, and RFC 6750
error responses.

Usage in a view module::

    @bp.get("/products")
    @require_oauth("read:products")
    def list_products():
        created_by = current_token["sub"]  # the calling M2M app's id
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NoReturn

from authlib.integrations.flask_oauth2 import ResourceProtector, current_token
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc9068 import JWTBearerTokenValidator
from cachetools import TLRUCache
from flask import Flask, abort, current_app
from joserfc.errors import ExpiredTokenError, JoseError, MissingClaimError
from joserfc.jws import extract_compact, validate_compact
from joserfc.jwt import ClaimsOption, JWTClaimsRegistry

from logto_m2m.http import make_session

from .config import ApiSettings
from .errors import error_response
from .jwks import KeyStore

if TYPE_CHECKING:
    from authlib.integrations.flask_oauth2.requests import FlaskJsonRequest

    from .validation import View

__all__ = ["AccessToken", "LogtoTokenValidator", "current_token", "init_app", "require_oauth"]

log = logging.getLogger(__name__)

REALM = "shopping-api"
MAX_TOKEN_BYTES = 8 * 1024
#: RFC 9068 section 4: the only acceptable JOSE "typ" values for an access token.
ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})
#: Headers that would let a token choose its own verification key (RFC 8725 section 3.10).
KEY_SOURCE_HEADERS = frozenset({"jku", "jwk", "x5u", "x5c"})
#: Claims every Logto access token carries; RFC 9068 section 2.2 requires all but ``scope``.
REQUIRED_CLAIMS = ("iss", "aud", "exp", "iat", "sub", "client_id", "jti")
#: RFC 6750 section 2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


class AccessToken(dict[str, Any]):
    """The verified claims of an access token; ``sub`` is the calling app's id for M2M tokens."""

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(self.get("scope", "").split())


# -- errors (RFC 6750 section 3) ------------------------------------------------------------


class BearerError(OAuth2Error):
    """An RFC 6750 error: JSON body plus ``WWW-Authenticate: Bearer realm=...``."""

    error: str | None = None
    status_code = 401

    def __init__(self, description: str, *, scope: str | None = None) -> None:
        super().__init__(description=description)
        self.scope = scope

    def www_authenticate(self) -> str:
        params = [f'realm="{REALM}"']
        if self.error:
            params += [f'error="{self.error}"', f'error_description="{self.description}"']
        if self.scope:
            params.append(f'scope="{self.scope}"')
        return "Bearer " + ", ".join(params)


class MissingCredentials(BearerError):
    """No token at all (or another scheme): 401 with no error code, as section 3.1 asks."""

    body_error = "unauthorized"


class InvalidRequest(BearerError):
    error = "invalid_request"
    status_code = 400


class InvalidToken(BearerError):
    error = "invalid_token"


class InsufficientScope(BearerError):
    error = "insufficient_scope"
    status_code = 403


# -- the protector: parses the header, answers errors ---------------------------------------


class LogtoResourceProtector(ResourceProtector):
    """``ResourceProtector`` with RFC 6750 header parsing and error responses."""

    def __call__(
        self, scopes: str | list[str] | None = None, optional: bool = False, **kwargs: Any
    ) -> Callable[[View], View]:
        # Authlib's decorator, with the type its stubs leave out (views stay type-checked).
        decorator: Callable[[View], View] = super().__call__(scopes, optional, **kwargs)
        return decorator

    def get_token_validator(self, token_type: str) -> LogtoTokenValidator:
        # One module-level protector serves every app in the process; each app has its validator.
        validator: LogtoTokenValidator = current_app.extensions["token_validator"]
        return validator

    def parse_request_authorization(self, request: FlaskJsonRequest) -> tuple[LogtoTokenValidator, str]:
        header = request.headers.get("Authorization")
        if not header:
            raise MissingCredentials("this API needs a Bearer access token in the Authorization header")
        scheme, _, credentials = header.strip().partition(" ")
        if scheme.lower() != "bearer":  # auth-scheme is case-insensitive (RFC 9110 section 11.1)
            raise MissingCredentials("this API accepts only Bearer access tokens")
        token = credentials.lstrip(" ")
        if not token or not B64TOKEN.fullmatch(token):
            raise InvalidRequest("the Authorization header must be 'Bearer <token>'")
        return self.get_token_validator("bearer"), token

    def raise_error_response(self, error: OAuth2Error) -> NoReturn:
        if not isinstance(error, BearerError):  # anything Authlib raised on its own
            error = InvalidToken("the access token is invalid")
        body_error = getattr(error, "body_error", None) or error.error or "invalid_token"
        response = error_response(
            error.status_code,
            body_error,
            error.description,
            headers={"WWW-Authenticate": error.www_authenticate()},
        )
        abort(response)


# -- the validator: every check of the design's "Token acceptance" --------------------------


class LogtoTokenValidator(JWTBearerTokenValidator):
    """RFC 9068 validation of Logto access tokens, with a cache of already-verified tokens."""

    def __init__(
        self,
        *,
        issuer: str,
        resource: str,
        keys: KeyStore,
        algorithms: Iterable[str],
        leeway: int = 30,
        cache_size: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(issuer=issuer, resource_server=resource, realm=REALM)
        self.keys = keys
        self.algorithms = frozenset(algorithms)
        self.leeway = leeway
        self.clock = clock
        # Bounded, and an entry is dropped the moment its token expires (ttu = exp).
        self._verified: TLRUCache[bytes, tuple[str, dict[str, Any]]] | None = (
            TLRUCache(maxsize=cache_size, ttu=lambda _k, entry, _now: entry[1]["exp"], timer=clock)
            if cache_size
            else None
        )
        self._verified_lock = threading.Lock()

    def get_jwks(self) -> NoReturn:  # pragma: no cover - keys come from KeyStore, one kid at a time
        raise NotImplementedError("LogtoTokenValidator looks keys up by kid in its KeyStore")

    def authenticate_token(self, token_string: str) -> AccessToken:  # type: ignore[override]  # our claims type, not Authlib's
        if len(token_string) > MAX_TOKEN_BYTES:
            raise InvalidToken("the access token is too large")
        digest = hashlib.sha256(token_string.encode()).digest()
        cached = self._cached(digest)
        if cached is not None:
            return AccessToken(cached)
        kid, claims = self._verify(token_string)
        if self._verified is not None:
            with self._verified_lock:
                self._verified[digest] = (kid, claims)
        return AccessToken(claims)

    def validate_token(  # type: ignore[override]  # our token type; Authlib passes the rest by keyword
        self, token: AccessToken, scopes: list[str] | None, request: object, **_ignored: object
    ) -> None:
        """Match the route's scopes exactly (case-sensitive, whole tokens, RFC 6749 section 3.3)."""
        if not scopes:
            return
        granted = token.scopes
        # Each entry of ``scopes`` is one acceptable set, written space-separated.
        if any(set(alternative.split()) <= granted for alternative in scopes):
            return
        needed = scopes[0] if len(scopes) == 1 else " ".join(scopes)
        log.info("token of client %s lacks scope %s", token.get("client_id"), needed)
        raise InsufficientScope(f"this request needs the scope {needed}", scope=needed)

    # -- internals --------------------------------------------------------------------------

    def _cached(self, digest: bytes) -> dict[str, Any] | None:
        if self._verified is None:
            return None
        with self._verified_lock:
            entry = self._verified.get(digest)
        # A key removed from the JWKS (rotated out) no longer vouches for its tokens.
        if entry is None or not self.keys.has(entry[0]):
            return None
        return entry[1]

    def _verify(self, token_string: str) -> tuple[str, dict[str, Any]]:
        try:  # a JWE (five parts) or anything else that is not a compact JWS fails here
            signed = extract_compact(token_string.encode("ascii"))
            header = signed.headers()
        except (JoseError, ValueError, TypeError, UnicodeError):
            raise self._reject("malformed", "the access token is not a signed JWT") from None
        kid = self._check_header(header)
        key = self.keys.find(kid)
        if key is None:
            raise self._reject("unknown kid", "the access token was signed with an unknown key")
        # joserfc checks that the algorithm fits the key (type, curve, and the JWK's own "alg",
        # RFC 8725 section 3.1) and rejects any "crit" header naming an extension it lacks.
        try:
            valid = validate_compact(signed, key, algorithms=[header["alg"]])
        except (JoseError, ValueError, TypeError):
            valid = False
        if not valid:
            raise self._reject("bad signature", "the access token's signature is invalid")
        return kid, self._check_claims(signed.payload)

    def _check_header(self, header: dict[str, Any]) -> str:
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in ACCESS_TOKEN_TYPES:
            raise self._reject("typ", "the token is not an access token (typ must be at+jwt)")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise self._reject("alg", "the access token's signing algorithm is not accepted")
        if KEY_SOURCE_HEADERS & header.keys():
            raise self._reject(
                "key header", "the access token names its own key; only the issuer's JWKS is trusted"
            )
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise self._reject("kid", "the access token names no signing key")
        return kid

    def _check_claims(self, payload: bytes) -> dict[str, Any]:
        try:
            claims = json.loads(payload)
        except (ValueError, UnicodeError):
            raise self._reject("payload", "the access token's payload is not JSON") from None
        if not isinstance(claims, dict):
            raise self._reject("payload", "the access token's payload is not a JSON object")
        registry = JWTClaimsRegistry(
            now=lambda: int(self.clock()),
            leeway=self.leeway,
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": self.resource_server},
            **{name: ClaimsOption(essential=True) for name in ("exp", "iat", "sub", "client_id", "jti")},
        )
        try:
            registry.validate(claims)
        except ExpiredTokenError:
            raise self._reject("expired", "the access token has expired") from None
        except MissingClaimError as exc:
            raise self._reject("missing claim", f"the access token lacks the claim(s) {exc.claim}") from None
        except JoseError as exc:
            claim = getattr(exc, "claim", None) or "?"
            raise self._reject(f"claim {claim}", self._claim_problem(claim)) from None
        if not isinstance(claims["client_id"], str):
            raise self._reject("claim client_id", "the access token's client_id is not a string")
        if "scope" in claims and not isinstance(claims["scope"], str):
            raise self._reject("claim scope", "the access token's scope is not a space-separated string")
        return claims

    @staticmethod
    def _claim_problem(claim: str) -> str:
        return {
            "iss": "the access token was not issued by the trusted issuer",
            "aud": "the access token was issued for another API (aud)",
            "iat": "the access token's iat is invalid or in the future",
            "nbf": "the access token is not valid yet (nbf)",
            "exp": "the access token's exp is invalid",
        }.get(claim, f"the access token's claim {claim} is invalid")

    @staticmethod
    def _reject(reason: str, description: str) -> InvalidToken:
        # Log the reason only: never the token, its claims or key material.
        log.info("rejected access token: %s", reason)
        return InvalidToken(description)


require_oauth = LogtoResourceProtector()


def init_app(app: Flask) -> None:
    """Wire the validator into ``require_oauth`` from the app's settings."""
    settings: ApiSettings = app.config["SETTINGS"]
    keys = KeyStore(
        endpoint=settings.logto_endpoint,
        issuer=settings.issuer,
        jwks_uri=settings.logto_jwks_uri,
        session=make_session(retries=1, timeout=(2.0, 5.0)),
        ttl=settings.jwks_cache_ttl_seconds,
        cooldown=settings.jwks_refetch_cooldown_seconds,
    )
    validator = LogtoTokenValidator(
        issuer=settings.issuer,
        resource=settings.shopping_api_resource,
        keys=keys,
        algorithms=settings.token_algorithms,
        leeway=settings.token_leeway_seconds,
        cache_size=settings.token_cache_size,
    )
    app.extensions["token_validator"] = validator
