"""Users and their custom data, persisted in one JSON file so they survive restarts.

The config says which users exist and the custom data they start with; users created through the
Management API and every custom-data PATCH are kept in ``users.json`` in the state directory,
written atomically (``logto_m2m.files``). One lock serialises read-merge-write, so concurrent
PATCHes never lose each other's keys.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from logto_m2m.files import write_atomically

from .config import User


class UserStoreError(Exception):
    """The store file exists but cannot be read."""


def _now_ms() -> int:
    return int(time.time() * 1000)


class UserStore:
    def __init__(self, path: Path, users: tuple[User, ...]) -> None:
        self.path = path
        self._users = {user.id: user for user in users}
        self._lock = threading.Lock()
        self._saved: dict[str, dict[str, Any]] = self._read()
        self._started_ms = _now_ms()
        for user_id, record in self._saved.items():
            created = record.get("created")
            if isinstance(created, dict) and user_id not in self._users:
                self._users[user_id] = User.model_validate({"id": user_id, **created["user"]})

    def _read(self) -> dict[str, dict[str, Any]]:
        if not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UserStoreError(
                f"{self.path}: cannot be read ({exc.__class__.__name__}); "
                "move it away to start from the config's custom data"
            ) from None
        if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
            raise UserStoreError(f"{self.path}: expected an object of user id -> record")
        return data

    def _write(self, saved: dict[str, dict[str, Any]]) -> None:
        write_atomically(self.path, json.dumps(saved, indent=2, sort_keys=True).encode(), mode=0o600)
        self._saved = saved

    def exists(self, user_id: str) -> bool:
        return user_id in self._users

    def ids(self) -> list[str]:
        return list(self._users)

    def find_by(self, *, username: str | None = None, email: str | None = None) -> User | None:
        for user in self._users.values():
            if (username is not None and user.username == username) or (
                email is not None and user.primary_email is not None and user.primary_email == email
            ):
                return user
        return None

    def create(self, user: User) -> str | None:
        """Add a user (``POST /api/users``), kept across restarts; or the Logto error code of the
        conflict (``user.username_already_in_use``, ``user.email_already_in_use``), checked under
        the same lock, so two requests cannot both take one username."""
        with self._lock:
            if user.username is not None and self.find_by(username=user.username):
                return "user.username_already_in_use"
            if user.primary_email is not None and self.find_by(email=user.primary_email):
                return "user.email_already_in_use"
            saved = dict(self._saved)
            created = user.model_dump(by_alias=True, exclude={"id", "custom_data"})
            saved[user.id] = {
                "created": {"user": created, "createdAt": _now_ms()},
                "customData": dict(user.custom_data),
                "updatedAt": _now_ms(),
            }
            self._write(saved)
            self._users[user.id] = user
            return None

    def custom_data(self, user_id: str) -> dict[str, Any]:
        saved = self._saved.get(user_id)
        return dict(saved["customData"]) if saved else dict(self._users[user_id].custom_data)

    def merge_custom_data(self, user_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Top-level merge, as Logto's PATCH /api/users/{id}/custom-data: nested objects are replaced."""
        with self._lock:
            merged = {**self.custom_data(user_id), **changes}
            saved = dict(self._saved)
            saved[user_id] = {**saved.get(user_id, {}), "customData": merged, "updatedAt": _now_ms()}
            self._write(saved)
            return dict(merged)

    def profile(self, user_id: str) -> dict[str, Any]:
        """The user as ``GET /api/users/{id}`` shows it (the fields of Logto's user object we know)."""
        user = self._users[user_id]
        record = self._saved.get(user_id, {})
        created_at = record.get("created", {}).get("createdAt", self._started_ms)
        return {
            "id": user.id,
            "username": user.username,
            "primaryEmail": user.primary_email,
            "primaryPhone": None,
            "name": user.name,
            "avatar": None,
            "customData": self.custom_data(user_id),
            "identities": {},
            "lastSignInAt": None,
            "createdAt": created_at,
            "updatedAt": record.get("updatedAt", self._started_ms),
            "profile": {},
            "applicationId": None,
            "isSuspended": False,
            "hasPassword": False,
        }
