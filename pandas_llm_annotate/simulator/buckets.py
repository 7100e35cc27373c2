"""Token buckets for the simulated rate limits, and OpenAI header helpers."""

from __future__ import annotations

import math

__all__ = ["TokenBucket", "go_duration"]


class TokenBucket:
    """A bucket refilled at ``per_minute / 60`` per second.

    Capacity is ``per_minute / 60 * burst`` (at least 1, so a request always
    fits eventually).  A cost larger than the capacity is clamped to it.
    """

    __slots__ = ("capacity", "level", "per_minute", "rate", "stamp")

    def __init__(self, per_minute: float, burst: float, now: float) -> None:
        self.per_minute = per_minute
        self.rate = per_minute / 60.0
        self.capacity = max(self.rate * burst, 1.0)
        self.level = self.capacity
        self.stamp = now

    def refill(self, now: float) -> None:
        """Add what flowed in since the last call."""
        if now > self.stamp:
            self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
            self.stamp = now

    def shortfall(self, cost: float) -> float:
        """Seconds until ``cost`` fits (0 if it fits now); call refill first."""
        missing = min(cost, self.capacity) - self.level
        return missing / self.rate if missing > 0 else 0.0

    def take(self, cost: float) -> None:
        """Consume ``cost`` (clamped to the capacity)."""
        self.level -= min(cost, self.capacity)

    def until_full(self) -> float:
        """Seconds until the bucket is full again."""
        return (self.capacity - self.level) / self.rate

    def reset(self, now: float) -> None:
        """Fill the bucket."""
        self.level = self.capacity
        self.stamp = now


def go_duration(seconds: float) -> str:
    """Format like Go's ``time.Duration``: ``6m0s``, ``1.2s``, ``12ms``, ``0s``."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{max(1, round(seconds * 1000))}ms"
    ms = round(seconds * 1000)
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs = f"{ms / 1000:.3f}".rstrip("0").rstrip(".")
    out = f"{secs}s"
    if hours or minutes:
        out = f"{minutes}m{out}"
    if hours:
        out = f"{hours}h{out}"
    return out


def ceil_ms(seconds: float) -> int:
    """Whole milliseconds, rounded up."""
    return math.ceil(seconds * 1000)
