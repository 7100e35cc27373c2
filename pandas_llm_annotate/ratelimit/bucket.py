"""A token bucket: pure policy, the time is given (`now`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Bucket:
    """A token bucket: holds at most `capacity`, refills `rate` per second."""

    capacity: float
    rate: float
    level: float
    stamp: float

    @classmethod
    def per_minute(cls, per_minute: float, burst_s: float, now: float) -> Bucket:
        rate = per_minute / 60.0
        capacity = max(1.0, rate * burst_s)
        return cls(capacity, rate, capacity, now)

    def refill(self, now: float) -> None:
        if now > self.stamp:
            self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
            self.stamp = now

    def wait(self, cost: float, now: float) -> float:
        """Seconds until `cost` fits (a cost above capacity waits for a full bucket)."""
        self.refill(now)
        missing = min(cost, self.capacity) - self.level
        return missing / self.rate if missing > 0 else 0.0

    def take(self, cost: float) -> None:
        self.level -= min(cost, self.capacity)
