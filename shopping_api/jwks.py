"""The issuer's signing keys: fetched from its JWKS, cached, shared by every thread of a process.

Rules (design "Keys"):
- the key set is fetched once and reused for ``ttl`` seconds; Logto serves it with
  ``Cache-Control: no-cache``, so caching is our job;
- a token whose ``kid`` is not in the set triggers at most one refetch per ``cooldown`` seconds per
  process, so a flood of forged ``kid`` values cannot become a flood of JWKS requests;
- if the JWKS endpoint is down, the keys already fetched keep working;
- keys only ever come from the configured JWKS, never from a token (no ``jku``/``jwk``/``x5u``).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType

import requests
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, Key, OKPKey, RSAKey

from logto_m2m.logto import discovery_url, issuer_for

log = logging.getLogger(__name__)

#: Key types Logto signs with; symmetric ("oct") keys are never accepted from a JWKS.
_KEY_TYPES: dict[str, type[Key]] = {"EC": ECKey, "RSA": RSAKey, "OKP": OKPKey}
_NO_KEYS: Mapping[str, Key] = MappingProxyType({})


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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.endpoint = endpoint
        self.issuer = issuer
        self._jwks_uri = jwks_uri  # None: ask discovery
        self.session = session
        self.ttl = ttl
        self.cooldown = cooldown
        self.clock = clock
        self._keys: Mapping[str, Key] = _NO_KEYS
        self._fetched_at = -math.inf  # last successful fetch
        self._attempted_at = -math.inf  # last fetch attempt, successful or not
        self._lock = threading.Lock()

    def find(self, kid: str) -> Key | None:
        """Return the key named ``kid``, fetching the JWKS when the rules above allow it."""
        now = self.clock()
        keys = self._keys
        if now - self._fetched_at >= self.ttl and now - self._attempted_at >= self.cooldown:
            # With keys in hand, an expired cache is refreshed by one thread while the others go
            # on with the current keys; with none yet, everyone waits for the first fetch.
            keys = self._refresh(now, "cache expired" if keys else "first use", wait=not keys)
        key = keys.get(kid)
        if key is None:
            if now - self._attempted_at >= self.cooldown:
                self._refresh(now, "unknown kid")
            else:
                with self._lock:  # a fetch may be in flight (first use, rotation): wait for it
                    pass
            key = self._keys.get(kid)
        return key

    def ready(self) -> bool:
        """Whether a key set with at least one key is loaded (fetched now if none was yet)."""
        now = self.clock()
        if not self._keys and now - self._attempted_at >= self.cooldown:
            self._refresh(now, "readiness check")
        return bool(self._keys)

    def has(self, kid: str) -> bool:
        """Whether ``kid`` is in the current set, without fetching (for the verified-token cache)."""
        return kid in self._keys

    def _refresh(self, decided_at: float, reason: str, *, wait: bool = True) -> Mapping[str, Key]:
        if not self._lock.acquire(blocking=wait):
            return self._keys  # another thread is fetching already
        try:
            # Another thread may have fetched while this one waited for the lock.
            if self._attempted_at >= decided_at:
                return self._keys
            self._attempted_at = self.clock()
            try:
                keys = self._fetch()
            except (requests.RequestException, ValueError) as exc:
                log.warning(
                    "JWKS fetch failed (%s): %s; keeping %d cached key(s)",
                    reason,
                    type(exc).__name__,
                    len(self._keys),
                )
                return self._keys
            self._keys = keys
            self._fetched_at = self._attempted_at
            log.info("JWKS fetched (%s): %d signing key(s)", reason, len(keys))
            return keys
        finally:
            self._lock.release()

    def _fetch(self) -> Mapping[str, Key]:
        uri = self._jwks_uri or self._discover_jwks_uri()
        response = self.session.get(uri, headers={"Accept": "application/jwk-set+json, application/json"})
        response.raise_for_status()
        document = response.json()
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise ValueError("JWKS document has no 'keys' list")
        return MappingProxyType(self._signing_keys(document["keys"]))

    def _discover_jwks_uri(self) -> str:
        """``jwks_uri`` from discovery (RFC 8414 / OIDC Discovery), else ``{issuer}/jwks``."""
        fallback = issuer_for(self.endpoint) + "/jwks"
        try:
            response = self.session.get(discovery_url(issuer_for(self.endpoint)))
            response.raise_for_status()
            metadata = response.json()
        except (requests.RequestException, ValueError) as exc:
            log.warning("discovery failed (%s); using %s", type(exc).__name__, fallback)
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
