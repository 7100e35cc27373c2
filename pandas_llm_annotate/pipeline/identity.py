"""Which server's answers count as the same for the cache: the model name plus a
server identity that survives a restart on another port.

- `cache_namespace="..."` (a setting): that name, whatever the URL (a farm of servers
  serving one model, a proxy that moves, a provider reached under two host names).
- a loopback server (127.0.0.0/8, localhost, ::1): `local`, whatever its port, so the
  simulator, llama.cpp's or vLLM's server restarted on a new free port keeps its cache;
- any other server: its host name (lower case; no scheme, port, path or credentials);
- several servers (`base_url=[...]`, one model): the sorted distinct identities of
  its servers joined by commas (`local` for any set of loopback servers, `a,b` for
  hosts a and b), so the answers do not depend on which server gave them, and a list
  in another order, or one whose local servers moved ports, shares the cache.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from urllib.parse import urlsplit

LOCAL = "local"


def server_identity(base_url: str | Sequence[str], cache_namespace: str | None = None) -> str:
    if cache_namespace:
        return f"namespace:{cache_namespace}"
    urls = [base_url] if isinstance(base_url, str) else base_url
    return ",".join(sorted({_identity(url) for url in urls}))


def _identity(base_url: str) -> str:
    host = (urlsplit(base_url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return LOCAL
    try:
        if ipaddress.ip_address(host).is_loopback:
            return LOCAL
    except ValueError:
        pass
    return host
