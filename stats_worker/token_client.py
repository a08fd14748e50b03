"""Access tokens from Logto with the ``client_credentials`` grant, and a requests auth that sends them.

The whole token story of the M2M app is in this module:

- ``TokenClient.get_token(resource, scopes)`` posts to Logto's token endpoint with HTTP Basic
  client authentication and ``grant_type``, ``resource`` (RFC 8707) and ``scope`` in the form body,
  on *every* fetch (Authlib's client drops ``resource`` on re-fetch, and Logto then answers
  ``invalid_target``). One token per (resource, scopes) is cached until shortly before it expires;
  concurrent callers wait for a single fetch.
- ``BearerAuth`` puts the token in ``Authorization: Bearer`` (RFC 6750 section 2.1) and, when the
  API answers 401 (the token was revoked, or the signing key rotated), drops it and re-sends the
  request once with a fresh one.
- Failures raise ``TokenRequestError`` with Logto's ``error``/``error_description`` and the fix.

Tokens and the secret never reach a log line or an exception message.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus, urlsplit

import requests
from requests.auth import AuthBase

from logto_m2m.http import make_session
from logto_m2m.urls import redact_url

log = logging.getLogger(__name__)

#: Never reuse a token closer than this to its expiry (capped at 10% of its lifetime), so a request
#: sent with it does not arrive after it expired.
EARLY_REFRESH_SECONDS = 60.0
#: Lifetime assumed when a token response has no ``expires_in``.
DEFAULT_LIFETIME_SECONDS = 300

#: What to do about each error Logto's token endpoint returns
#: (as recorded in tests/logto_captures/token-*.json).
FIXES = {
    "invalid_client": "check LOGTO_APP_ID and LOGTO_APP_SECRET: they must be the App ID and an App "
    "secret of a machine-to-machine application in Logto",
    "invalid_target": "the resource indicator must be registered in Logto under API resources, "
    "spelled exactly (no typo, no trailing slash)",
    "invalid_scope": "request only scopes defined on that API resource",
    "unauthorized_client": "the application must be a machine-to-machine application",
    "invalid_request": "the token request was malformed; check the Logto endpoint and the app type",
}
NO_SCOPE_FIX = (
    "assign the application a machine-to-machine role holding these permissions "
    "(Logto drops scopes the app's roles do not grant, without an error)"
)


class TokenRequestError(Exception):
    """The token endpoint refused or could not be reached; the message says what to fix."""

    def __init__(
        self,
        message: str,
        *,
        error: str | None = None,
        error_description: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.error = error
        self.error_description = error_description
        self.status = status


def normalize_scopes(scopes: str | Iterable[str]) -> tuple[str, ...]:
    """Scopes as a tuple of names, repeats dropped, order kept."""
    names = scopes.split() if isinstance(scopes, str) else list(scopes)
    return tuple(dict.fromkeys(names))


def basic_authorization(client_id: str, client_secret: str) -> str:
    """``Authorization`` value for ``client_secret_basic``.

    RFC 6749 section 2.3.1: id and secret are each form-urlencoded *before* being joined with ":"
    and base64-encoded, so a ":" or "%" in either survives the trip.
    """
    pair = f"{quote_plus(client_id, safe='')}:{quote_plus(client_secret, safe='')}"
    return "Basic " + base64.b64encode(pair.encode("ascii")).decode("ascii")


@dataclass(frozen=True)
class _CachedToken:
    value: str
    refresh_at: float  # time.monotonic() after which it is fetched again


class TokenClient:
    """Fetches and caches Logto access tokens for one M2M application."""

    def __init__(
        self, token_endpoint: str, app_id: str, app_secret: str, session: requests.Session | None = None
    ) -> None:
        self.token_endpoint = token_endpoint
        self._authorization = basic_authorization(app_id, app_secret)
        # Retrying the POST is safe: a second token request only mints a second token.
        self._session = session or make_session(allowed_methods=("POST",))
        self._tokens: dict[tuple[str, str], _CachedToken] = {}
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._locks_guard = threading.Lock()
        #: Token requests this client has sent (one per fetch, whatever the outcome).
        self.fetch_count = 0

    def __repr__(self) -> str:  # the secret stays out of reprs, and so out of tracebacks
        return f"TokenClient(token_endpoint={redact_url(self.token_endpoint)!r})"

    def get_token(self, resource: str, scopes: str | Iterable[str]) -> str:
        """Return a valid access token for ``resource`` carrying ``scopes``; fetch one if needed."""
        key = (resource, " ".join(normalize_scopes(scopes)))
        cached = self._tokens.get(key)
        if cached is not None and time.monotonic() < cached.refresh_at:
            return cached.value
        with self._lock_for(key):
            # Another thread may have fetched while this one waited for the lock.
            cached = self._tokens.get(key)
            if cached is not None and time.monotonic() < cached.refresh_at:
                return cached.value
            cached = self._fetch(*key)
            self._tokens[key] = cached
            return cached.value

    def invalidate(self, resource: str, scopes: str | Iterable[str], token: str | None = None) -> None:
        """Forget the cached token (only if it is still ``token``, when given)."""
        key = (resource, " ".join(normalize_scopes(scopes)))
        with self._lock_for(key):
            cached = self._tokens.get(key)
            if cached is not None and (token is None or cached.value == token):
                del self._tokens[key]

    def _lock_for(self, key: tuple[str, str]) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    def _fetch(self, resource: str, scope: str) -> _CachedToken:
        form = {"grant_type": "client_credentials", "resource": resource}
        if scope:
            form["scope"] = scope
        started = time.monotonic()
        with self._locks_guard:
            self.fetch_count += 1
        try:
            response = self._session.post(
                self.token_endpoint,
                data=form,
                headers={"Authorization": self._authorization, "Accept": "application/json"},
            )
        except requests.RequestException as exc:
            raise TokenRequestError(
                f"cannot reach the Logto token endpoint {redact_url(self.token_endpoint)} "
                f"({type(exc).__name__}); check LOGTO_ENDPOINT and that Logto is running"
            ) from None
        body = _json_object(response)
        if response.status_code != 200:
            raise _error_from(response.status_code, body, redact_url(self.token_endpoint), resource)
        token = body.get("access_token")
        # RFC 6749 section 5.1: expires_in is only RECOMMENDED (Logto always sends it); without
        # it, assume a short life and let a 401 trigger the next fetch.
        expires_in = body.get("expires_in", DEFAULT_LIFETIME_SECONDS)
        if (
            not isinstance(token, str)
            or not token
            or str(body.get("token_type", "")).lower() != "bearer"  # case-insensitive, 7.1
            or type(expires_in) not in (int, float)
            or expires_in <= 0
        ):
            raise TokenRequestError(
                f"the token endpoint {redact_url(self.token_endpoint)} returned 200 without a usable bearer "
                "token (access_token, token_type Bearer, a positive expires_in); "
                "is LOGTO_ENDPOINT a Logto server?",
                status=200,
            )
        _check_granted(resource, scope, body.get("scope"))
        early = min(EARLY_REFRESH_SECONDS, 0.1 * expires_in)
        log.info(
            "got an access token for %s (scope %r, expires in %ss)",
            resource,
            body.get("scope", ""),
            expires_in,
        )
        return _CachedToken(token, started + expires_in - early)


def _json_object(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _error_from(status: int, body: dict[str, Any], endpoint: str, resource: str) -> TokenRequestError:
    error = body.get("error") if isinstance(body.get("error"), str) else None
    description = body.get("error_description") if isinstance(body.get("error_description"), str) else None
    if error is None:
        hint = (
            "Logto is unavailable right now; retried, giving up"
            if status >= 500 or status == 429
            else "is LOGTO_ENDPOINT the Logto base URL?"
        )
        return TokenRequestError(
            f"the token endpoint {endpoint} answered HTTP {status}: {hint}", status=status
        )
    fix = FIXES.get(error, "see Logto's error description")
    if error == "invalid_target":
        fix = f"{fix}; requested resource: {resource!r}"
    message = f"Logto refused the token request: {error}"
    if description:
        message += f" ({description})"
    return TokenRequestError(
        f"{message}. Fix: {fix}", error=error, error_description=description, status=status
    )


def _check_granted(resource: str, requested: str, granted: object) -> None:
    """Logto grants only requested scopes held by the app's roles and drops the rest silently."""
    if not requested:
        return
    granted_names = set(granted.split()) if isinstance(granted, str) else set()
    missing = [name for name in requested.split() if name not in granted_names]
    if not missing:
        return
    if not granted_names:
        raise TokenRequestError(
            f"Logto granted none of the requested scopes ({requested}) for {resource}. Fix: {NO_SCOPE_FIX}",
            error="no_scope_granted",
        )
    log.warning(
        "Logto did not grant %s for %s (granted: %s): %s",
        " ".join(missing),
        resource,
        " ".join(sorted(granted_names)),
        NO_SCOPE_FIX,
    )


class BearerAuth(AuthBase):
    """Send a cached Logto token as a bearer token; on a 401, fetch a new one and retry once."""

    def __init__(self, client: TokenClient, resource: str, scopes: str | Iterable[str]) -> None:
        self.client = client
        self.resource = resource
        self.scopes = normalize_scopes(scopes)

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        token = self.client.get_token(self.resource, self.scopes)
        request.headers["Authorization"] = f"Bearer {token}"
        request.register_hook("response", self._retry_on_401)
        return request

    def _retry_on_401(self, response: requests.Response, **kwargs: Any) -> requests.Response:
        request = response.request
        if response.status_code != 401 or getattr(request, "_logto_retried", False):
            return response
        sent = request.headers.get("Authorization", "")
        if not isinstance(sent, str) or not sent.startswith("Bearer "):
            # requests strips the token when a redirect leaves the origin, but keeps this hook:
            # a 401 from that other host must not be answered with a fresh token.
            return response
        sent = sent.removeprefix("Bearer ")
        log.warning(
            "%s answered 401 to a %s request; fetching a new token and retrying once",
            _origin(request.url),
            request.method,
        )
        self.client.invalidate(self.resource, self.scopes, token=sent)
        _ = response.content  # drain it so the connection can be reused
        response.close()
        retry = request.copy()
        retry._logto_retried = True  # type: ignore[attr-defined]  # our own mark on the copy: retried once
        retry.headers["Authorization"] = f"Bearer {self.client.get_token(self.resource, self.scopes)}"
        retried = response.connection.send(retry, **kwargs)
        retried.history.append(response)
        retried.request = retry
        return retried


def _origin(url: str | None) -> str:
    parts = urlsplit(redact_url(url or ""))
    return f"{parts.scheme}://{parts.netloc}{parts.path}"
