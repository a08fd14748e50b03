"""The issuer's signing keys: an EC P-384 key (Logto's default, hence ES384), kept on disk.

The private JWKS lives in one file readable by its owner only (0600), written atomically, so a
restart keeps issued tokens valid. Rotation puts a new key first (it signs from then on) and keeps
the previous one published, so tokens signed just before the rotation still verify, as with
Logto's ``logto db config rotate oidc.privateKeys``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from joserfc.jwk import ECKey, KeySet

from logto_m2m.files import write_atomically

ALGORITHM = "ES384"
CURVE = "P-384"
#: Keys published after a rotation: the new one and the one before it.
KEYS_KEPT = 2


class KeyFileError(Exception):
    """The key file exists but cannot be used; the message says which file and why."""


def generate_key() -> ECKey:
    key = ECKey.generate_key(CURVE, parameters={"alg": ALGORITHM, "use": "sig"}, private=True)
    # RFC 7638 thumbprint as kid, as Logto does.
    return ECKey.import_key(key.as_dict(private=True), parameters={"kid": key.thumbprint()})


class SigningKeys:
    """The key set: ``current`` signs, all of them verify and are published."""

    def __init__(self, keys: list[ECKey]) -> None:
        if not keys:
            raise ValueError("at least one key is needed")
        self.keys = keys
        self.key_set = KeySet([*keys])

    @property
    def current(self) -> ECKey:
        return self.keys[0]

    def public_jwks(self) -> dict[str, Any]:
        """The JWKS to publish: public halves only, each with kid, alg and use."""
        return {"keys": [key.as_dict(private=False) for key in self.keys]}

    @classmethod
    def load_or_create(cls, path: Path, *, rotate: bool = False) -> SigningKeys:
        """Load the key file, creating it on first start; with ``rotate``, add a new first key."""
        keys = cls._read(path) if path.exists() else []
        if rotate or not keys:
            keys = [generate_key(), *keys][:KEYS_KEPT]
            try:
                write_atomically(
                    path,
                    json.dumps({"keys": [k.as_dict(private=True) for k in keys]}, indent=2).encode(),
                    mode=0o600,
                )
            except OSError as exc:
                raise KeyFileError(
                    f"{path}: cannot be written ({exc.strerror or exc.__class__.__name__})"
                ) from None
        return cls(keys)

    @staticmethod
    def _read(path: Path) -> list[ECKey]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            key_set = KeySet.import_key_set(data)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise KeyFileError(
                f"{path}: not a usable private JWKS ({exc.__class__.__name__}); "
                "move it away to generate a new key"
            ) from None
        keys = [
            key
            for key in key_set.keys
            if isinstance(key, ECKey) and key.is_private and key.get("crv") == CURVE and key.kid
        ]
        if len(keys) != len(key_set.keys) or not keys:
            raise KeyFileError(f"{path}: every key must be a private EC P-384 key with a kid")
        return keys
