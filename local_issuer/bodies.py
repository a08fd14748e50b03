"""Request bodies read with a cap, the same way on every route of the local issuer.

A size announced with ``Content-Length`` is refused before reading; a chunked body has no size up
front, so at most one byte past the cap is read to tell "exactly the cap" from "too large"
(werkzeug itself stops a chunked body at ``MAX_CONTENT_LENGTH`` without an error, which would leave
a cut prefix to parse). Each caller answers the two faults the way Logto answers them there.
"""

from __future__ import annotations

from flask import Request
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge


class BodyTooLarge(Exception):
    """The body is larger than the cap, announced or found while reading."""


class BodyCut(Exception):
    """The client stopped sending before the body was complete."""


def read_capped(request: Request, limit: int) -> bytes:
    """The request body, at most ``limit`` bytes; ``BodyTooLarge`` or ``BodyCut`` otherwise."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge
    try:
        raw = request.stream.read(limit + 1)
    except RequestEntityTooLarge:  # werkzeug's own count of a chunked body past MAX_CONTENT_LENGTH
        raise BodyTooLarge from None
    except ClientDisconnected:
        raise BodyCut from None
    if len(raw) > limit:
        raise BodyTooLarge
    return raw
