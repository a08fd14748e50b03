"""URLs as they may be shown to people: never with the credentials a URL can carry.

A base URL such as ``https://user:password@logto.example`` is valid in a setting (requests would
send the pair as HTTP Basic), but its userinfo is a secret: every error message, log line and status
output that names a configured URL passes it through ``redact_url`` first.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

#: What replaces the userinfo (``user:password``) of a URL.
REDACTED = "***"


def redact_url(url: str) -> str:
    """``url`` with its userinfo, if any, replaced by ``***`` (``http://***@host:8000/path``)."""
    try:
        parts = urlsplit(url)
    except ValueError:  # not a URL at all: show nothing of it rather than a secret
        return REDACTED
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{REDACTED}@{host}"))
