"""Secrets out of text: the user name and password of a URL, and the API key.

Used wherever a message, a repr or a report could show them (transport errors,
`Settings.__repr__`, configuration errors)."""

from __future__ import annotations

import re

# "scheme://" then the userinfo: everything up to the last "@" before the path
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#\s]*@")
MIN_SECRET_CHARS = 8  # shorter "keys" ("EMPTY", "x") are placeholders, not secrets
MASK = "***"


def has_credentials(url: str) -> bool:
    """Whether `url` carries a user name or password (`http://user:pass@host/...`)."""
    return _USERINFO.match(url.strip()) is not None


def redact_url(text: str) -> str:
    """`text` with the user name and password of every URL in it replaced by `***`."""
    return _USERINFO.sub(rf"\g<1>{MASK}@", text)


def redact(text: str, secret: str | None = None) -> str:
    """`text` without URL credentials and without `secret` (the API key)."""
    text = redact_url(text)
    if secret and len(secret) >= MIN_SECRET_CHARS:
        text = text.replace(secret, MASK)
    return text
