"""What the scheduler works with: a request ready to send, the limiter it asks, the
error that ends a run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from ..errors import RequestError

J = TypeVar("J")


class FatalError(Exception):
    """Wraps the request error that stops the whole run."""

    def __init__(self, error: RequestError) -> None:
        super().__init__(str(error))
        self.error = error


class Admission(Protocol):
    """What the scheduler asks of a limiter (`ratelimit.RunLimits`, `ratelimit.Limiter`)."""

    @property
    def limit(self) -> int: ...

    def cost(self, prompt_estimate: int, max_tokens: int) -> float: ...

    def acquire(self, cost: float, now: float) -> float: ...

    def succeeded(self, now: float, headers: Mapping[str, str], now_epoch: float, *,
                  prompt_estimate: int = 0, prompt_tokens: int | None = None,
                  latency: float | None = None) -> None: ...

    @property
    def probing(self) -> bool: ...

    def admitted(self, now: float, headers: Mapping[str, str], now_epoch: float) -> bool: ...

    def failed(self, now: float, *, overload: bool, fault: bool = False,
               timed_out: float | None = None) -> None: ...

    def overloaded(self, now: float) -> bool: ...

    def rate_limited(self, now: float, headers: Mapping[str, str], now_epoch: float, *,
                     max_wait: float = ...) -> float: ...


class Health(Protocol):
    """One server among several (`dispatch/servers.py`): whether its workers may take a
    job now, and whether a failed request's job should go to another server."""

    async def ready(self) -> None: ...

    def moves(self, error: RequestError) -> bool: ...


@dataclass(frozen=True)
class Request(Generic[J]):
    """A job ready to send: the JSON body and what the limiter charges for it."""

    job: J
    body: dict[str, Any]
    prompt_estimate: int
    max_tokens: int
    form: str = "plain"  # the structured-output form in the body
