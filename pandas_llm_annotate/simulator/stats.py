"""Counters kept by the simulator; O(1) work per request."""

from __future__ import annotations

from typing import Any

from .config import FAULT_KINDS

__all__ = ["Stats"]


class Stats:
    """Plain counters, mutated only from the server's event loop."""

    __slots__ = (
        "abandoned",
        "bad_request",
        "batch_failed",
        "batch_requests",
        "batches",
        "completion_tokens",
        "faults",
        "files",
        "in_flight",
        "max_in_flight",
        "not_found",
        "ok",
        "overloaded",
        "prompt_tokens",
        "rate_limited",
        "rate_limited_by",
        "requests",
        "streamed",
        "texts",
        "unauthorized",
    )

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Zero everything (``in_flight`` keeps counting live requests)."""
        self.requests = 0  # every POST to /v1/chat/completions
        self.ok = 0  # answered with a proper 200
        self.streamed = 0  # of which streamed
        self.rate_limited = 0  # 429s
        self.rate_limited_by = {"requests": 0, "tokens": 0}
        self.overloaded = 0  # 503s
        self.unauthorized = 0  # 401s
        self.not_found = 0  # 404s (unknown model)
        self.bad_request = 0  # 400s
        self.abandoned = 0  # client disconnected before its answer was sent
        self.faults = dict.fromkeys(FAULT_KINDS, 0)
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.texts: dict[str, int] = {}  # each text answered, online or in a batch
        self.files = 0  # files uploaded (POST /v1/files)
        self.batches = 0  # batches created (POST /v1/batches)
        self.batch_requests = 0  # requests of batches answered (200)
        self.batch_failed = 0  # requests of batches that failed (an error-file line)
        in_flight = getattr(self, "in_flight", 0)
        self.in_flight = in_flight
        self.max_in_flight = in_flight

    def answered(self, texts: list[str], prompt: int, completion: int, *,
                 batch: bool = False) -> None:
        """Record a delivered 200 answer (online, or a request of a batch)."""
        if batch:
            self.batch_requests += 1
        else:
            self.ok += 1
        self.prompt_tokens += prompt
        self.completion_tokens += completion
        counts = self.texts
        for text in texts:
            counts[text] = counts.get(text, 0) + 1

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready copy."""
        out: dict[str, Any] = {name: getattr(self, name) for name in self.__slots__}
        out["faults"] = dict(self.faults)
        out["rate_limited_by"] = dict(self.rate_limited_by)
        out["texts"] = dict(self.texts)
        return out
