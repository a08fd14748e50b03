"""Checking Logto access tokens: the whole resource-server side of the M2M flow in one module.

A request is let through only if its ``Authorization: Bearer`` token is a JWT access token
(RFC 9068) that Logto signed for this API, and that carries the scope the route needs. Authlib's
``ResourceProtector`` and ``rfc9068.JWTBearerTokenValidator`` provide the structure; three things
stock Authlib gets wrong for Logto are overridden here (the README's "Token checks" says more):
the algorithm list (Logto signs ES384 by default), the required ``typ: at+jwt``, and RFC 6750
error responses. A token naming a key the API does not have, while the issuer's JWKS cannot be
fetched, is answered 503 with ``Retry-After`` (the key rules are in ``jwks.py``).

The scope a route names in ``require_oauth`` is the only declaration of it: /openapi.json reads it
from there (``required_scope``).

Usage in a view module::

    @bp.get("/products")
    @require_oauth("read:products")
    def list_products():
        created_by = current_token["sub"]  # the calling M2M app's id
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, NoReturn, TypeVar, cast

from authlib.integrations.flask_oauth2 import ResourceProtector, current_token
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc9068 import JWTBearerTokenValidator
from cachetools import LRUCache
from flask import Flask, abort, current_app, g, request
from joserfc.errors import ExpiredTokenError, JoseError, MissingClaimError
from joserfc.jws import JWSRegistry, extract_compact, validate_compact
from joserfc.jwt import JWTClaimsRegistry
from sqlalchemy import String

from logto_m2m.http import make_session

from .config import ApiSettings
from .errors import error_response
from .jwks import KeyStore, KeysUnavailable
from .models import Product

__all__ = [
    "AccessToken",
    "LogtoTokenValidator",
    "current_token",
    "init_app",
    "require_oauth",
    "required_scope",
]

log = logging.getLogger(__name__)

View = TypeVar("View", bound=Callable[..., Any])

REALM = "shopping-api"
MAX_TOKEN_BYTES = 8 * 1024
#: RFC 9068 section 4: the only acceptable JOSE "typ" values for an access token.
ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})
#: Headers that would let a token choose its own verification key (RFC 8725 section 3.10).
KEY_SOURCE_HEADERS = frozenset({"jku", "jwk", "x5u", "x5c"})
#: Claims every Logto access token carries; RFC 9068 section 2.2 requires all but ``scope``.
REQUIRED_CLAIMS = ("iss", "aud", "exp", "iat", "sub", "client_id", "jti")
#: Claims the API stores (``sub`` as ``created_by``) or logs: bounded by the database column.
STORED_CLAIMS = ("sub", "client_id")
MAX_ID_LENGTH: int = cast(String, Product.__table__.c.created_by.type).length or 0
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

    def response_headers(self) -> dict[str, str]:
        params = [f'realm="{REALM}"']
        if self.error:
            params += [f'error="{self.error}"', f'error_description="{self.description}"']
        if self.scope:
            params.append(f'scope="{self.scope}"')
        return {"WWW-Authenticate": "Bearer " + ", ".join(params)}


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


class KeysUnavailableError(BearerError):
    """The token names a key we do not have and the JWKS cannot be fetched: retry shortly."""

    error = "temporarily_unavailable"
    status_code = 503

    def __init__(self, retry_after: int) -> None:
        super().__init__("the issuer's signing keys cannot be fetched right now; retry shortly")
        self.retry_after = retry_after

    def response_headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


# -- the protector: parses the header, answers errors ---------------------------------------


class LogtoResourceProtector(ResourceProtector):
    """``ResourceProtector`` with RFC 6750 header parsing and error responses.

    ``require_oauth("read:products")`` is the one place a route names its scope: the check reads
    it from there, and so does /openapi.json (``required_scope``).
    """

    def __call__(self, scope: str) -> Callable[[View], View]:  # type: ignore[override]  # one scope, named once
        scopes = [scope]

        def decorator(view: View) -> View:
            @functools.wraps(view)
            def protected(*args: Any, **kwargs: Any) -> Any:
                try:
                    self.acquire_token(scopes)
                except OAuth2Error as error:
                    self.raise_error_response(error)
                return view(*args, **kwargs)

            protected.required_scope = scope  # type: ignore[attr-defined]  # read by required_scope
            return cast(View, protected)

        return decorator

    def acquire_token(self, scopes: str | list[str] | None = None, **_claims: Any) -> AccessToken:
        # Authlib's own acquire_token first copies the whole Flask request into an Authlib request
        # object, which a token check never reads: most of the cost of a request whose token is
        # already verified. Only the Authorization header is needed.
        if isinstance(scopes, str):  # as Authlib's acquire("read:orders") passes it
            scopes = [scopes]
        validator = self.get_token_validator("bearer")
        token = validator.authenticate_token(self.bearer_token(request.headers.get("Authorization")))
        validator.validate_token(token, scopes, request)
        g.authlib_server_oauth2_token = token  # what ``current_token`` reads
        return token

    def get_token_validator(self, token_type: str) -> LogtoTokenValidator:
        # One module-level protector serves every app in the process; each app has its validator.
        return current_app.extensions["token_validator"]  # type: ignore[no-any-return]

    @staticmethod
    def bearer_token(header: str | None) -> str:
        """The token of ``Authorization: Bearer <token>`` (RFC 6750 section 2.1), or a BearerError."""
        if not header:
            raise MissingCredentials("this API needs a Bearer access token in the Authorization header")
        scheme, _, credentials = header.strip().partition(" ")
        if scheme.lower() != "bearer":  # auth-scheme is case-insensitive (RFC 9110 section 11.1)
            raise MissingCredentials("this API accepts only Bearer access tokens")
        token = credentials.lstrip(" ")
        if not token or not B64TOKEN.fullmatch(token):
            raise InvalidRequest("the Authorization header must be 'Bearer <token>'")
        return token

    def raise_error_response(self, error: OAuth2Error) -> NoReturn:
        if not isinstance(error, BearerError):  # anything Authlib raised on its own
            error = InvalidToken("the access token is invalid")
        body_error = getattr(error, "body_error", None) or error.error or "invalid_token"
        response = error_response(
            error.status_code, body_error, error.description, headers=error.response_headers()
        )
        abort(response)


def required_scope(view: Callable[..., Any]) -> str | None:
    """The scope ``require_oauth`` demands of a (possibly further decorated) view; None if open."""
    current: Callable[..., Any] | None = view
    while current is not None:
        scope = getattr(current, "required_scope", None)
        if isinstance(scope, str):
            return scope
        current = getattr(current, "__wrapped__", None)
    return None


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
        # One joserfc registry per accepted algorithm, built once (joserfc builds one per call
        # otherwise): the token's "alg", once allowed, is the only one its signature may use.
        self._jws_registries = {alg: JWSRegistry(algorithms=[alg]) for alg in self.algorithms}
        self.leeway = leeway
        self.clock = clock
        # Bounded (least recently used out first); an entry is never used past its token's exp.
        self._verified: LRUCache[bytes, tuple[str, dict[str, Any]]] | None = (
            LRUCache(maxsize=cache_size) if cache_size else None
        )
        self._verified_lock = threading.Lock()
        self._claims_registry = JWTClaimsRegistry(
            now=lambda: int(self.clock()),
            leeway=leeway,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": resource},
            exp={"essential": True},
            iat={"essential": True},
            sub={"essential": True},
            client_id={"essential": True},
            jti={"essential": True},
        )

    def get_jwks(self) -> NoReturn:  # pragma: no cover - keys come from KeyStore, one kid at a time
        raise NotImplementedError("LogtoTokenValidator looks keys up by kid in its KeyStore")

    def authenticate_token(self, token_string: str) -> AccessToken:  # type: ignore[override]  # our claims type
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
        self, token: AccessToken, scopes: list[str] | None, request: Any, **_ignored: Any
    ) -> None:
        """Match the route's scopes exactly (case-sensitive, whole tokens, RFC 6749 section 3.3)."""
        if not scopes:
            return
        granted = token.scopes
        # Each entry of ``scopes`` is one acceptable set, written space-separated.
        if any(set(alternative.split()) <= granted for alternative in scopes):
            return
        needed = scopes[0] if len(scopes) == 1 else " ".join(scopes)
        log.info("rejected access token: lacks scope %s (client %s)", needed, token.get("client_id"))
        raise InsufficientScope(f"this request needs the scope {needed}", scope=needed)

    # -- internals --------------------------------------------------------------------------

    def _cached(self, digest: bytes) -> dict[str, Any] | None:
        if self._verified is None:
            return None
        with self._verified_lock:
            entry = self._verified.get(digest)
        if entry is None:
            return None
        kid, claims = entry
        # Expired: verify again (the leeway applies there). A key removed from the JWKS (rotated
        # out) no longer vouches for its tokens.
        if self.clock() >= claims["exp"] or not self.keys.has(kid):
            return None
        return claims

    def _verify(self, token_string: str) -> tuple[str, dict[str, Any]]:
        try:  # a JWE (five parts) or anything else that is not a compact JWS fails here
            signed = extract_compact(token_string.encode("ascii"))
            header = signed.headers()
        except (JoseError, ValueError, TypeError, UnicodeError):
            raise self._reject("malformed", "the access token is not a signed JWT") from None
        kid = self._check_header(header)
        try:
            key = self.keys.find(kid)
        except KeysUnavailable as exc:
            log.info("rejected access token: unknown kid and the JWKS cannot be fetched (answered 503)")
            raise KeysUnavailableError(exc.retry_after) from None
        if key is None:
            raise self._reject("unknown kid", "the access token was signed with an unknown key")
        # joserfc checks that the algorithm fits the key (type, curve, and the JWK's own "alg",
        # RFC 8725 section 3.1) and rejects any "crit" header naming an extension it lacks.
        try:
            valid = validate_compact(signed, key, registry=self._jws_registries[header["alg"]])
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
        client = _loggable_client_id(claims.get("client_id"))
        try:
            self._claims_registry.validate(claims)
        except ExpiredTokenError:
            raise self._reject("expired", "the access token has expired", client) from None
        except MissingClaimError as exc:
            raise self._reject(
                "missing claim", f"the access token lacks the claim(s) {exc.claim}", client
            ) from None
        except JoseError as exc:
            claim = getattr(exc, "claim", None) or "?"
            raise self._reject(f"claim {claim}", self._claim_problem(claim), client) from None
        for name in STORED_CLAIMS:
            if not isinstance(claims[name], str):
                raise self._reject(f"claim {name}", f"the access token's {name} is not a string", client)
            # The API stores these (created_by); a longer value could not be stored.
            if len(claims[name]) > MAX_ID_LENGTH:
                raise self._reject(
                    f"claim {name} too long",
                    f"the access token's {name} is longer than {MAX_ID_LENGTH} characters",
                    client,
                )
        if "scope" in claims and not isinstance(claims["scope"], str):
            raise self._reject(
                "claim scope", "the access token's scope is not a space-separated string", client
            )
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
    def _reject(reason: str, description: str, client_id: str | None = None) -> InvalidToken:
        # The reason and, once the signature is verified, the client id: never the token, other
        # claim values or key material.
        log.info("rejected access token: %s (client %s)", reason, client_id or "unknown")
        return InvalidToken(description)


def _loggable_client_id(value: object) -> str | None:
    """The signed ``client_id`` if it can be logged as is (a string no longer than the column)."""
    return value if isinstance(value, str) and 0 < len(value) <= MAX_ID_LENGTH else None


require_oauth = LogtoResourceProtector()


def init_app(app: Flask) -> None:
    """Wire the validator into ``require_oauth`` from the app's settings."""
    settings: ApiSettings = app.config["SETTINGS"]
    issuer = settings.issuer
    keys = KeyStore(
        endpoint=settings.logto_endpoint,
        issuer=issuer,
        jwks_uri=settings.logto_jwks_uri,
        # No retries here: a failed fetch is retried by KeyStore's own rules, within its deadline.
        session=make_session(retries=0),
        ttl=settings.jwks_cache_ttl_seconds,
        cooldown=settings.jwks_refetch_cooldown_seconds,
        deadline=settings.jwks_fetch_timeout_seconds,
    )
    validator = LogtoTokenValidator(
        issuer=issuer,
        resource=settings.shopping_api_resource,
        keys=keys,
        algorithms=settings.token_algorithms,
        leeway=settings.token_leeway_seconds,
        cache_size=settings.token_cache_size,
    )
    app.extensions["token_validator"] = validator
    # Each gunicorn worker builds its app: load the keys now, so its first requests do not wait.
    # The flask command (init-db, seed: Flask marks its runs so) checks no token: no fetch, and no
    # wait for an issuer that may not be up yet.
    if os.environ.get("FLASK_RUN_FROM_CLI") != "true":
        keys.load()
