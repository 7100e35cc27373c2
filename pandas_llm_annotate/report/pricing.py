"""What a run's tokens cost, for a few well-known models.

`PRICES` holds list prices in USD per 1M tokens, `(input, output)`, as published by
the providers in 2025; check your provider's page, prices change and discounts for
cached prompts are not counted. A run through a Batch API (`batch=True`) costs
`BATCH_DISCOUNT` of the price (OpenAI and Anthropic: half). A model name matches its entry exactly,
with a date or `-latest` suffix (`gpt-4o-mini-2024-07-18`, `claude-3-5-haiku-latest`)
and with a provider prefix (`openai/gpt-4o-mini`). Any other model has no known
price, and no cost is shown, unless you give one (the `price=` setting).
"""

from __future__ import annotations

import re

Price = tuple[float, float]  # USD per 1M prompt tokens, per 1M completion tokens
BATCH_DISCOUNT = 0.5  # providers' Batch APIs (OpenAI, Anthropic): half the list price

PRICES: dict[str, Price] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-3.5-turbo": (0.50, 1.50),
    "o3-mini": (1.10, 4.40),
    "o4-mini": (1.10, 4.40),
    "claude-3-haiku": (0.25, 1.25),
    "claude-3-5-haiku": (0.80, 4.00),
    "claude-3-5-sonnet": (3.00, 15.00),
    "claude-3-7-sonnet": (3.00, 15.00),
    "claude-sonnet-4": (3.00, 15.00),
    "gemini-1.5-flash": (0.075, 0.30),
    "gemini-2.0-flash": (0.10, 0.40),
    "deepseek-chat": (0.27, 1.10),
}

_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8}|latest)$")


def price_of(model: str | None) -> Price | None:
    """The `(input, output)` USD price per 1M tokens of `model`, or None when unknown."""
    if not model:
        return None
    name = model.strip().lower().rsplit("/", 1)[-1]
    return PRICES.get(name) or PRICES.get(_SUFFIX.sub("", name))


def cost_usd(model: str | None, prompt_tokens: int, completion_tokens: int,
             price: Price | None = None) -> float | None:
    """USD for these tokens at `price` (or the model's known price); None when unknown."""
    price = price or price_of(model)
    if price is None:
        return None
    return (prompt_tokens * price[0] + completion_tokens * price[1]) / 1_000_000
