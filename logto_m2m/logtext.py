"""Text that goes into a log line: one record, one line, nothing a terminal would act on.

Values a client controls (a decoded URL path, a header, a custom-data key) could otherwise forge a
log line with a newline or send escape sequences to whoever tails the log. The API's log formatter
and the local issuer's log filters both write through ``escape_controls``.
"""

from __future__ import annotations

import re

# C0 controls, DEL, C1 controls, and the Unicode line and paragraph separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """``text`` with each control character written as ``\\xNN`` (``\\uNNNN`` above 0xFF)."""
    return _CONTROL.sub(_escape, text)
