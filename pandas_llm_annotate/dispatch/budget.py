"""A spending cap that holds under concurrency: `max_cost=` in USD.

Before a request starts, its upper bound (its prompt estimate with a margin of
`PROMPT_MARGIN`, as servers' tokenizers differ from the estimate, at the input price,
plus its whole `max_tokens` at the output price) is reserved; when it is answered, the
reservation becomes what it really cost (`usage`, or the bound when the server sent
none); an error releases it. A request whose bound does not fit next to what is spent
and reserved waits for a reservation to settle, and when nothing is in flight and it
still does not fit, the run stops with status "budget": the spend can never pass the
cap, whatever the concurrency.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from ..report.pricing import Price

PROMPT_MARGIN = 1.5  # a server may count more prompt tokens than the estimate


class BudgetReached(Exception):
    """The next request could take the spend past `max_cost`; nothing is in flight."""


@dataclass
class Budget:
    cap: float  # USD
    price: Price  # USD per 1M prompt / completion tokens (the batch discount applied)
    spent: float = 0.0
    reserved: float = 0.0
    holds: int = 0  # reservations not yet settled (a count: float sums drift)
    _settled: asyncio.Event = field(default_factory=asyncio.Event)

    def bound(self, prompt_estimate: float, max_tokens: int) -> float:
        """The most a request can cost."""
        prompt = prompt_estimate * PROMPT_MARGIN
        return (prompt * self.price[0] + max_tokens * self.price[1]) / 1e6

    def cost(self, prompt_tokens: int | None, completion_tokens: int | None) -> float | None:
        """What an answer cost by its `usage`; None when the server sent none."""
        if prompt_tokens is None or completion_tokens is None:
            return None
        return (prompt_tokens * self.price[0] + completion_tokens * self.price[1]) / 1e6

    async def reserve(self, amount: float) -> None:
        """Wait until `amount` fits under the cap and reserve it; `BudgetReached` when it
        cannot fit even with nothing else in flight."""
        while self.spent + self.reserved + amount > self.cap:
            if not self.holds:
                raise BudgetReached
            self._settled.clear()
            await self._settled.wait()
        self.reserved += amount
        self.holds += 1

    def settle(self, reserved: float, cost: float | None) -> None:
        """A reserved request ended having cost `cost` (None: nothing)."""
        self.holds -= 1
        self.reserved = max(0.0, self.reserved - reserved) if self.holds else 0.0
        self.spent += cost or 0.0
        self._settled.set()
