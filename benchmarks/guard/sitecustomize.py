"""Loaded at start-up by every contender process (``benchmarks/guard`` is on its
PYTHONPATH): refuses any socket connection or name lookup that is not loopback, so no
library can phone home, and appends each refusal to ``$BENCH_GUARD_LOG``."""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
from typing import Any

_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", ""}


def _local(host: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    if host is None:
        return True
    if not isinstance(host, str):
        return False
    name = host.strip("[]").lower()
    if name in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(name.split("%")[0]).is_loopback
    except ValueError:
        return False


def _refuse(what: str, target: object) -> None:
    path = os.environ.get("BENCH_GUARD_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"{what} {target!r}\n")
    raise socket.gaierror(socket.EAI_NONAME, f"benchmark guard: no network but loopback "
                                             f"({what} {target!r})")


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if event == "socket.getaddrinfo":
        if not _local(args[0]):
            _refuse("lookup", args[0])
    elif event == "socket.connect":
        sock, address = args
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _local(address[0]):
            _refuse("connect", address)


sys.addaudithook(_hook)
