"""`Estimate`: what a run would ask and cost, computed before it, without a request.

Drawn in notebooks by the display layer (`display/html.py` registers the view)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from .pricing import BATCH_DISCOUNT, Price


@dataclass(frozen=True)
class Estimate:
    """The bill before the run (`df.llm.estimate(...)`); `to_dict()` is JSON-serialisable.

    Token counts are estimates: `prompt_tokens` is calibrated from the `usage` servers
    returned for earlier answers in the same cache namespace (`calibrated_from` answers;
    0: the package's own estimate, `text.estimate_prompt_tokens`: ≈4 characters or 1 CJK
    character per token, plus one per underscore and per two double quotes);
    `completion_tokens_max` is the upper bound (`max_tokens` of every request), and
    `completion_tokens` the expected value (learned the same way, else a guess: the
    mean label's tokens per row, half of `max_tokens` for free text). With `batch` (a run
    through a Batch API) the costs are at the batch price (`BATCH_DISCOUNT` of `price`)."""

    model: str
    rows: int
    missing: int
    distinct: int
    pieces: int  # after chunking
    cached: int  # pieces already answered in the cache
    to_ask: int  # pieces a run would ask for
    rows_per_request: int
    requests: int
    prompt_tokens: int
    completion_tokens: int
    completion_tokens_max: int
    calibrated_from: int  # earlier answers with usage the token estimates learned from
    price: Price | None  # USD per 1M prompt / completion tokens
    wall_s: float | None  # None: no rate limit or latency known for this server yet
    wall_basis: str  # what the wall time rests on
    batch: bool = False  # the run would go through a Batch API

    def _cost(self, completion: int, factor: float = 1.0) -> float | None:
        if self.price is None:
            return None
        usd = (self.prompt_tokens * self.price[0] + completion * self.price[1]) / 1e6
        return round(usd * factor, 6)

    @property
    def cost_usd(self) -> float | None:
        """Expected cost at the price the run pays: list price, or the batch price with
        `batch` (None when the price is unknown: pass `price=`)."""
        return self._cost(self.completion_tokens, BATCH_DISCOUNT if self.batch else 1.0)

    @property
    def cost_usd_max(self) -> float | None:
        """Upper bound: every request uses its whole `max_tokens`."""
        return self._cost(self.completion_tokens_max, BATCH_DISCOUNT if self.batch else 1.0)

    @property
    def batch_cost_usd(self) -> float | None:
        """Expected cost through a provider's Batch API (half the list price)."""
        return self._cost(self.completion_tokens, BATCH_DISCOUNT)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["price"] = list(self.price) if self.price is not None else None
        out.update(cost_usd=self.cost_usd, cost_usd_max=self.cost_usd_max,
                   batch_cost_usd=self.batch_cost_usd)
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in out.items()}

    def __repr__(self) -> str:
        cost = "price unknown (pass price=)" if self.cost_usd is None else (
            f"${self.cost_usd:.4f} (at most ${self.cost_usd_max:.4f}; "
            + ("at the batch price)" if self.batch else f"batch ${self.batch_cost_usd:.4f})"))
        wall = "unknown" if self.wall_s is None else f"{self.wall_s:.1f}s ({self.wall_basis})"
        return (f"<Estimate {self.model}: {self.rows} rows, {self.distinct} distinct, "
                f"{self.cached} cached, {self.requests} requests, "
                f"~{self.prompt_tokens} prompt + ~{self.completion_tokens} completion tokens, "
                f"{cost}, wall {wall}>")

    def _repr_html_(self) -> str:
        from .report import view

        return str(view("estimate_html")(self))
