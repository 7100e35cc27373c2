"""A spending cap that holds under concurrency: `max_cost=` in USD.

Before a request starts, its upper bound (its prompt estimate with a margin of
`PROMPT_MARGIN`, as servers' tokenizers differ from the estimate, at the input price,
plus its whole `max_tokens` at the output price) is reserved; when it is answered, the
reservation becomes what it really cost (`usage`, or the bound when the server sent
none); an error releases it. A request whose bound does not fit next to what is spent
and reserved waits for a reservation to settle, and when nothing is in flight and it
still does not fit, the run stops with status "budget": the spend can never pass the
cap, whatever the concurrency.

A batch (`dispatch/batch.py`) is sent whole and answered hours later, so it does not
wait: each of its requests `take`s its bound (at the batch price) if it fits, the
batch is cut before the first that does not, and the answers settle the real cost.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

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
        self.hold(amount)

    def take(self, amount: float) -> bool:
        """Reserve `amount` if it fits under the cap now (True), without waiting."""
        if self.spent + self.reserved + amount > self.cap:
            return False
        self.hold(amount)
        return True

    def hold(self, amount: float) -> None:
        """Reserve `amount` whether it fits or not (a batch already sent)."""
        self.reserved += amount
        self.holds += 1

    def settle(self, reserved: float, cost: float | None) -> None:
        """A reserved request ended having cost `cost` (None: nothing)."""
        self.holds -= 1
        self.reserved = max(0.0, self.reserved - reserved) if self.holds else 0.0
        self.spent += cost or 0.0
        self._settled.set()


@dataclass
class BatchHolds:
    """A batch run's reservations in `budget`, by `custom_id`, at `factor` of the price
    (the batch discount)."""

    budget: Budget
    factor: float
    held: dict[str, float] = field(default_factory=dict)
    cut: bool = False  # a request did not fit: it and those after it were left out

    def take(self, cid: str, prompt_estimate: float, max_tokens: int, *,
             sent: bool = False) -> bool:
        """Reserve a request's bound if it fits (or whatever it is, `sent` already)."""
        amount = self.budget.bound(prompt_estimate, max_tokens) * self.factor
        if sent:
            self.budget.hold(amount)
        elif not self.budget.take(amount):
            self.cut = True
            return False
        self.held[cid] = amount
        return True

    def pay(self, cid: str, usage: Any, *, answered: bool = True) -> None:
        """Settle a request: by its answer's `usage`, its bound when the answer had none,
        nothing when it was not answered (a failed request, an expired batch)."""
        held = self.held.pop(cid, None)
        cost = held if answered else None
        if answered and isinstance(usage, dict):
            tokens = usage.get("prompt_tokens"), usage.get("completion_tokens")
            if all(isinstance(t, int) for t in tokens):
                cost = (self.budget.cost(*tokens) or 0.0) * self.factor
        if held is None:  # not reserved by this run (answered twice): counted anyway
            self.budget.spent += cost or 0.0
        else:
            self.budget.settle(held, cost)
