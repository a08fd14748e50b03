"""Opaque keyset cursors: base64url JSON of the last row's sort key (plus what it belongs to).

Clients pass ``next_cursor`` back unchanged. Anything that does not decode to a position this API
could have produced (edited, truncated, or taken from another query) is refused with 400.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, NoReturn, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .schemas import MAX_ID
from .validation import invalid

M = TypeVar("M", bound=BaseModel)


class ProductCursor(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    after_id: Annotated[int, Field(ge=0, le=MAX_ID)]


class OrderCursor(BaseModel):
    """Position after the order (``created_us``, ``id``) in the listing of ``date`` in ``tz``."""

    model_config = ConfigDict(strict=True, extra="forbid")

    date: str
    tz: str
    created_us: int  # microseconds since the Unix epoch, UTC: exact, unlike a float
    id: Annotated[int, Field(ge=1, le=2**63 - 1)]


def encode_cursor(position: BaseModel) -> str:
    data = json.dumps(position.model_dump(), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def decode_cursor(text: str, model: type[M]) -> M:
    """Decode a cursor or stop the request with 400 naming ``cursor``."""
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        return model.model_validate_json(data)
    except (binascii.Error, ValueError, ValidationError):
        bad_cursor("is not a cursor this API issued; pass next_cursor back unchanged")


def bad_cursor(message: str) -> NoReturn:
    invalid(400, "invalid_request", "the cursor is invalid", {"cursor": message})
