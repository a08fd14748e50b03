"""The issuer's signing keys: fetched from its JWKS, cached, shared by every thread of a process.

Rules (design "Keys"):
- the key set is loaded once when the process starts (``load``), and refreshed in the background
  every ``ttl`` seconds (caching is the client's job: Logto marks its JWKS no-cache, or not at all);
- a token whose ``kid`` is not in the set triggers a refetch at once (a key Logto has just rotated
  in is accepted immediately), then no other ``kid``-triggered refetch for ``cooldown`` seconds, so
  a flood of forged ``kid`` values costs one JWKS request per cooldown. Only these refetches start
  the cooldown, once they succeed: the start-up load and the TTL refresh never do;
- every fetch (discovery included) ends within ``deadline`` seconds, connection and whole body, no
  matter how slowly the issuer answers; it follows no redirect and reads at most ``MAX_JWKS_BYTES``;
- if the JWKS endpoint is down, the keys already fetched keep working; a failed fetch is not
  retried for ``RETRY_AFTER_FAILURE`` seconds (or ``cooldown``, if shorter), so a down issuer is
  not hammered either;
- when a token names a ``kid`` we do not have and the JWKS cannot be fetched right now (down, slow,
  bad body), ``find`` raises ``KeysUnavailable``: the API answers 503 with ``Retry-After``, since
  the token may well be valid;
- keys only ever come from the configured JWKS, never from a token (no ``jku``/``jwk``/``x5u``).
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from types import MappingProxyType
from typing import Any

import requests
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, Key, OKPKey, RSAKey

from logto_m2m.logto import discovery_url, issuer_for
from logto_m2m.urls import redact_url

log = logging.getLogger(__name__)

#: Key types Logto signs with; symmetric ("oct") keys are never accepted from a JWKS.
_KEY_TYPES: dict[str, type[Key]] = {"EC": ECKey, "RSA": RSAKey, "OKP": OKPKey}
_NO_KEYS: Mapping[str, Key] = MappingProxyType({})
#: A Logto JWKS is well under 2 KiB (two keys during a rotation); 64 KiB holds dozens of RSA keys.
MAX_JWKS_BYTES = 64 * 1024
#: Seconds between attempts after a failed fetch (any cause), so a down issuer is not hammered.
RETRY_AFTER_FAILURE = 5.0
#: Bytes read per socket read: small, so the deadline is checked while a body trickles in.
_READ_SIZE = 4096


class KeysUnavailable(Exception):
    """A token names a key we do not have, and the JWKS cannot be fetched to look for it."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("the issuer's signing keys cannot be fetched right now")
        self.retry_after = retry_after


class FetchError(Exception):
    """A JWKS or discovery answer that is not usable (redirect, too large, too slow, bad body)."""


class KeyStore:
    """Signing keys by ``kid``, refreshed by TTL and, rate-limited, on an unknown ``kid``."""

    def __init__(
        self,
        *,
        endpoint: str,
        issuer: str,
        jwks_uri: str | None,
        session: requests.Session,
        ttl: float,
        cooldown: float,
        deadline: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.endpoint = endpoint
        self.issuer = issuer
        self._jwks_uri = jwks_uri  # None: ask discovery
        self.session = session
        self.ttl = ttl
        self.cooldown = cooldown
        self.deadline = deadline
        self.retry_after_failure = min(cooldown, RETRY_AFTER_FAILURE)
        self.clock = clock  # decides when to fetch; deadlines use the real monotonic clock
        self._keys: Mapping[str, Key] = _NO_KEYS
        self._loaded = False  # a key set was fetched at least once
        self._fetched_at = -math.inf  # last successful fetch
        self._failed_at = -math.inf  # last failed fetch, if it came after the last successful one
        self._kid_refetch_at = -math.inf  # last successful refetch caused by an unknown kid
        self._inflight: Future[bool] | None = None
        self._lock = threading.Lock()  # guards the fields above; never held during a fetch

    # -- what the token check uses ------------------------------------------------------------

    def find(self, kid: str) -> Key | None:
        """The key named ``kid``; None if the issuer does not publish it.

        Raises ``KeysUnavailable`` when ``kid`` is unknown and the JWKS cannot be fetched now.
        """
        keys = self._keys
        if self._loaded:
            self._refresh_if_expired()
        key = keys.get(kid)
        if key is not None:
            return key
        fetch = self._fetch_for_unknown_kid(kid)
        fetched = self._wait(fetch) if fetch is not None else not self._failing()
        key = self._keys.get(kid)
        if key is None and not fetched:
            raise KeysUnavailable(self._retry_after())
        return key

    def has(self, kid: str) -> bool:
        """Whether ``kid`` is in the current set, without fetching (for the verified-token cache)."""
        return kid in self._keys

    def ready(self) -> bool:
        """True once a key set with at least one usable key is loaded (for /readyz).

        With none loaded yet (the start-up load failed), it tries one fetch, no sooner than the
        back-off after a failure allows: readiness holds traffic back, so without this a process
        whose issuer was down at start would wait for a token that never comes to fetch its keys.
        """
        # Not sooner than the back-off after the last fetch, failed or not: a key set that came back
        # empty must not turn every readiness probe into a fetch.
        last = max(self._failed_at, self._fetched_at)
        if not self._keys and self.clock() - last >= self.retry_after_failure:
            self._wait(self._start("readiness check"))
        return bool(self._keys)

    def load(self) -> bool:
        """Fetch the key set now, waiting at most ``deadline`` seconds; False if that failed.

        Called once as the process starts, so the first requests do not pay for the fetch. A
        failure is logged and tolerated: the keys are then fetched on first use.
        """
        return self._wait(self._start("start-up"))

    # -- when to fetch --------------------------------------------------------------------------

    def _refresh_if_expired(self) -> None:
        now = self.clock()
        if now - self._fetched_at >= self.ttl and now - self._failed_at >= self.retry_after_failure:
            # In the background: requests go on with the keys in hand meanwhile.
            self._start("cache expired")

    def _fetch_for_unknown_kid(self, kid: str) -> Future[bool] | None:
        """The fetch to wait for before deciding that ``kid`` is unknown, if the rules allow one."""
        with self._lock:
            now = self.clock()
            if kid in self._keys:
                return None  # a fetch that ended since this lookup began brought it
            if self._inflight is not None and not self._inflight.done():
                return self._inflight  # a fetch is under way (start-up, rotation): wait for it
            if now - self._failed_at < self.retry_after_failure:
                return None
            if not self._loaded:
                reason = "first use"  # the start-up load failed: this is not a kid refetch
            elif now - self._kid_refetch_at >= self.cooldown:
                reason = "unknown kid"  # starts the cooldown once it succeeds (see _run)
            else:
                return None
            return self._start_locked(reason)

    def _failing(self) -> bool:
        return self._failed_at > self._fetched_at or not self._loaded

    def _retry_after(self) -> int:
        """Seconds until a fetch may be tried again, for the 503's ``Retry-After``."""
        now = self.clock()
        wait = self.retry_after_failure - (now - self._failed_at)
        if self._loaded:
            wait = max(wait, self.cooldown - (now - self._kid_refetch_at))
        return max(1, math.ceil(wait))

    # -- fetching, off the request's own thread -------------------------------------------------

    def _start(self, reason: str) -> Future[bool]:
        with self._lock:
            if self._inflight is not None and not self._inflight.done():
                return self._inflight
            return self._start_locked(reason)

    def _start_locked(self, reason: str) -> Future[bool]:
        future: Future[bool] = Future()
        self._inflight = future
        thread = threading.Thread(target=self._run, args=(future, reason), name="jwks-fetch", daemon=True)
        thread.start()
        return future

    def _wait(self, future: Future[bool]) -> bool:
        """Wait for ``future`` at most ``deadline`` seconds; True if it brought a key set."""
        try:
            return future.result(timeout=self.deadline)
        except FutureTimeout:
            # The fetch enforces the deadline itself; this covers what it cannot: a slow DNS answer,
            # or response headers sent one byte at a time.
            with self._lock:
                self._failed_at = self.clock()
                if self._inflight is future:
                    self._inflight = None
            log.warning(
                "JWKS fetch failed: no answer within %g s; keeping %d cached key(s)",
                self.deadline,
                len(self._keys),
            )
            return False

    def _run(self, future: Future[bool], reason: str) -> None:
        started = self.clock()
        try:
            keys = self._fetch(time.monotonic() + self.deadline)
        except Exception as exc:  # a background fetch reports every failure, then ends
            with self._lock:
                self._failed_at = self.clock()
            log.warning(
                "JWKS fetch failed (%s): %s; keeping %d cached key(s)",
                reason,
                _describe(exc),
                len(self._keys),
            )
            future.set_result(False)
            return
        with self._lock:
            self._keys = keys
            self._loaded = True
            self._fetched_at = started
            self._failed_at = -math.inf
            if reason == "unknown kid":
                # A failed refetch does not start the cooldown: the failure backoff spaces those,
                # and a rotated key is then accepted as soon as the issuer answers again.
                self._kid_refetch_at = started
        log.info("JWKS fetched (%s): %d signing key(s)", reason, len(keys))
        future.set_result(True)

    def _fetch(self, deadline: float) -> Mapping[str, Key]:
        uri = self._jwks_uri or self._discover_jwks_uri(deadline)
        document = self._get_json(uri, deadline)
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise FetchError("JWKS document has no 'keys' list")
        return MappingProxyType(self._signing_keys(document["keys"]))

    def _get_json(self, uri: str, deadline: float) -> Any:
        """GET ``uri`` and parse it, all within ``deadline``: no redirect, at most MAX_JWKS_BYTES."""
        remaining = _remaining(deadline)
        response = self.session.get(
            uri,
            headers={
                "Accept": "application/jwk-set+json, application/json",
                "Accept-Encoding": "identity",  # the size cap counts the bytes that are parsed
            },
            timeout=(remaining, remaining),
            stream=True,
            allow_redirects=False,  # a redirect could hand us someone else's keys
        )
        with response:
            if response.is_redirect or 300 <= response.status_code < 400:
                raise FetchError(f"HTTP {response.status_code} redirect (redirects are not followed)")
            response.raise_for_status()
            if response.headers.get("Content-Encoding", "identity").lower() != "identity":
                raise FetchError("compressed body (identity was asked for)")
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > MAX_JWKS_BYTES:
                raise FetchError(f"body larger than {MAX_JWKS_BYTES} bytes")
            body = bytearray()
            while chunk := response.raw.read1(_READ_SIZE):
                body += chunk
                if len(body) > MAX_JWKS_BYTES:
                    raise FetchError(f"body larger than {MAX_JWKS_BYTES} bytes")
                _remaining(deadline)
        try:
            return json.loads(body)
        except (ValueError, UnicodeError):
            raise FetchError("body is not JSON") from None

    def _discover_jwks_uri(self, deadline: float) -> str:
        """``jwks_uri`` from discovery (RFC 8414 / OIDC Discovery), else ``{issuer}/jwks``."""
        fallback = issuer_for(self.endpoint) + "/jwks"
        try:
            metadata = self._get_json(discovery_url(issuer_for(self.endpoint)), deadline)
        except (requests.RequestException, FetchError) as exc:
            _remaining(deadline)  # out of time: the fallback would not make it either
            log.warning("discovery failed (%s); using %s", _describe(exc), redact_url(fallback))
            return fallback
        if not isinstance(metadata, dict):
            return fallback
        if metadata.get("issuer") != self.issuer:
            # Tokens carry Logto's configured ENDPOINT, which may differ from the URL we reach it by.
            log.warning(
                "discovery says issuer %r but LOGTO_ISSUER is %r: tokens will be rejected "
                "unless LOGTO_ISSUER matches the issuer Logto puts in tokens",
                metadata.get("issuer"),
                self.issuer,
            )
        uri = metadata.get("jwks_uri")
        if isinstance(uri, str) and uri.startswith(("http://", "https://")):
            self._jwks_uri = uri
            return uri
        return fallback

    @staticmethod
    def _signing_keys(entries: list[object]) -> dict[str, Key]:
        """Import each usable signing key; one odd entry must not take the others down."""
        keys: dict[str, Key] = {}
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            kid, kty, use = entry.get("kid"), entry.get("kty"), entry.get("use", "sig")
            if not isinstance(kid, str) or not kid or use != "sig" or kty not in _KEY_TYPES:
                continue
            try:
                key = _KEY_TYPES[kty].import_key(entry)
            except (JoseError, ValueError, TypeError):
                log.warning("skipping JWKS entry %r: not a usable public key", kid)
                continue
            if key.is_private:
                # A JWKS must publish public keys only; never keep private material in memory.
                key = _KEY_TYPES[kty].import_key(key.as_dict(private=False))
            keys[kid] = key
        return keys


def _remaining(deadline: float) -> float:
    """Seconds left before ``deadline``; FetchError once it has passed."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise FetchError("deadline exceeded")
    return left


def _describe(exc: BaseException) -> str:
    # FetchError messages are ours; for anything else the type is enough (messages may carry URLs
    # with credentials or server-chosen text).
    if isinstance(exc, FetchError):
        return str(exc)
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return f"HTTP {exc.response.status_code}"
    return type(exc).__name__
