"""What a batch dispatcher keeps about its batches, and the store it keeps them in
(`pipeline/batch_state.py`: the cache file)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

Job = tuple[str, ...]  # piece keys asked in one request


@dataclass(frozen=True)
class BatchRecord:
    """A batch as the store keeps it: `jobs` maps each custom_id to its piece keys."""

    id: str  # the store's own id (a batch id exists only once the server created it)
    input_file_id: str
    batch_id: str | None
    status: str
    form: str  # the answer format its bodies were built with
    jobs: Mapping[str, Job]
    created: float  # seconds since the epoch

    @property
    def keys(self) -> set[str]:
        return {k for job in self.jobs.values() for k in job}


class BatchStore(Protocol):
    """Where a run's batches are kept (`pipeline/batch_state.py`); called off the loop."""

    def pending(self) -> list[BatchRecord]: ...

    def add(self, input_file_id: str, form: str, jobs: Mapping[str, Job]) -> BatchRecord: ...

    def created(self, record_id: str, batch_id: str, status: str) -> None: ...

    def update(self, record_id: str, status: str, completed: int, failed: int) -> None: ...

    def collected(self, record_id: str) -> None: ...
