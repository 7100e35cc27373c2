"""Batch dispatch: the online scheduler's jobs and answers, through a provider's Batch API.

Same inputs as `Scheduler`: jobs (tuples of piece keys), `prepare(job)` for the body,
`on_answer(job, completion)` (which returns jobs to ask again) and `on_failure`. The
bodies become lines of JSONL input files (at most `MAX_REQUESTS` lines and
`MAX_FILE_BYTES` each), one batch per file; each line's `custom_id` is a hash of its
piece keys, and the mapping is kept by the store (the cache file), with the batch id,
before and after the batch is created: a run that is killed, interrupted or crashes
loses nothing, and the next run over the same texts waits for those batches instead of
submitting them again. Status checks back off from `poll_s` to `POLL_MAX_S`.

When batches end, their output and error files go line by line to `on_answer`, like
online answers. A job with no answer (a failed request, a batch that failed, expired
or was cancelled, a row of a packed answer that was missing or invalid) is asked again
in a new round of batches, or handed to `fallback` (the online scheduler) when given;
after `max_rounds` rounds it fails with the last reason. A batch a server no longer
knows (404) is asked again too.

With a `budget` (`max_cost=`), each request's bound at the batch price is reserved as
its line is written; a batch is cut before the first request that does not fit (those
left out are never sent, and the run ends with `BudgetReached`: status "budget").
Batches resumed from an earlier run hold their bound too. Each answer settles what it
cost by its `usage` (at the batch price); a request with no answer costs nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from ..errors import (
    APIError,
    BatchRequestError,
    NotFoundError,
    RequestError,
)
from ..protocol import batch_api
from ..protocol.batch_api import BatchAPI, BatchInfo, input_line
from ..protocol.transport import Completion
from ..ratelimit.headers import retry_after
from ..report.metrics import BatchProgress, Metrics
from ..report.pricing import BATCH_DISCOUNT
from .batch_results import Results
from .batch_store import BatchRecord, BatchStore, Job
from .budget import BatchHolds, Budget, BudgetReached
from .retry import backoff, is_fatal
from .scheduler import FatalError, Request

T = TypeVar("T")
POLL_MAX_S = 60.0  # status checks back off to one a minute
POLL_GROWTH = 1.5
STUCK_S = 25 * 3600.0  # a batch not done an hour past its 24 h window is cancelled


def custom_id(job: Job) -> str:
    return "pla-" + hashlib.sha256("\0".join(job).encode()).hexdigest()[:32]


@dataclass
class BatchDispatcher:
    """Ask every job through batches; see the module doc. `needed(key)`: the key still
    wants an answer (the sink has none, and it did not fail for good)."""

    api: BatchAPI
    store: BatchStore
    prepare: Callable[[Job], Request[Job]]
    on_answer: Callable[[Job, Completion], Sequence[Job]]
    on_failure: Callable[[Job, RequestError], None]
    needed: Callable[[str], bool]
    metrics: Metrics
    max_rounds: int
    poll_s: float = 1.0
    fallback: Callable[[list[Job]], Awaitable[None]] | None = None
    reformat: Callable[[Request[Job], RequestError], bool] = lambda request, error: False
    metadata: Mapping[str, str] = field(default_factory=dict)
    rng: random.Random = field(default_factory=random.Random)
    budget: Budget | None = None

    async def run(self, jobs: Iterable[Job]) -> None:
        """Ask every job; `BudgetReached` at the end when the budget left some out."""
        self._holds = None if self.budget is None else BatchHolds(self.budget, BATCH_DISCOUNT)
        self._results = Results(
            api=self.api, prepare=self.prepare, on_answer=self.on_answer,
            on_failure=self.on_failure, needed=self.needed, metrics=self.metrics,
            reformat=self.reformat, holds=self._holds, max_rounds=self.max_rounds,
            backoff=self._backoff)
        await self._rounds(list(jobs))
        if self._holds is not None and self._holds.cut:
            raise BudgetReached

    async def _rounds(self, todo: list[Job]) -> None:
        self._reached = False  # a Batch API call succeeded: the server is there
        self._wanted = {k for job in todo for k in job}
        self._pending: set[str] = set()
        stored = await asyncio.to_thread(self.store.pending)
        waiting = [r for r in stored if r.keys & self._wanted]
        self.metrics.batches_resumed = len(waiting)
        for record in waiting:
            self._pending |= record.keys
            if self._holds is not None:
                self._hold_resumed(self._holds, record)
        again = [(job, "") for job in todo]
        rounds = 0
        while True:
            fresh = self._still_needed(again)
            if rounds and fresh and self.fallback is not None:
                await self.fallback([job for job, _ in fresh])
                return
            if rounds > self.max_rounds:
                for job, why in fresh:
                    self.on_failure(job, BatchRequestError(
                        f"no answer after {rounds} batches: {why}"))
                return
            try:
                waiting += await self._submit([job for job, _ in fresh])
            except FatalError as fatal:
                if self.fallback is None or self._pending:
                    raise
                self.metrics.note(f"the Batch API failed ({fatal.error}): rows asked online")
                await self.fallback([job for job, _ in self._still_needed(fresh)])
                return
            if not waiting:
                return
            again = await self._wait(waiting)
            waiting, rounds = [], rounds + 1

    def _hold_resumed(self, holds: BatchHolds, record: BatchRecord) -> None:
        """A resumed batch's requests hold their bound; one whose texts are not in this
        run cannot be bounded here and is paid by its usage when it comes back."""
        for cid, job in record.jobs.items():
            if cid not in holds.held and (request := self._results.prepared(job)) is not None:
                holds.take(cid, request.prompt_estimate, request.max_tokens, sent=True)

    def _still_needed(self, jobs: Iterable[tuple[Job, str]]) -> list[tuple[Job, str]]:
        """Jobs cut to the keys this run asks for, not answered, not in a batch, once."""
        out: list[tuple[Job, str]] = []
        seen: set[str] = set()
        for job, why in jobs:
            keys = tuple(k for k in job if k in self._wanted and k not in self._pending
                         and k not in seen and self.needed(k))
            seen.update(keys)
            if keys:
                out.append((keys, why))
        return out

    # --- submitting ------------------------------------------------------------------

    async def _submit(self, jobs: list[Job]) -> list[BatchRecord]:
        """One batch per file of at most `MAX_REQUESTS` lines and `MAX_FILE_BYTES`."""
        records: list[BatchRecord] = []
        lines: dict[str, Job] = {}
        data: list[bytes] = []
        size, form = 0, "plain"
        for job in jobs:
            request = self.prepare(job)
            if self._holds is not None and not self._holds.take(
                    custom_id(job), request.prompt_estimate, request.max_tokens):
                break  # this job and the rest are left out
            line = input_line(custom_id(job), request.body)
            if lines and (len(lines) >= batch_api.MAX_REQUESTS
                          or size + len(line) > batch_api.MAX_FILE_BYTES):
                records.append(await self._send(lines, data, form))
                lines, data, size = {}, [], 0
            lines[custom_id(job)] = job
            data.append(line)
            size += len(line)
            form = request.form
        if lines:
            records.append(await self._send(lines, data, form))
        return records

    async def _send(self, lines: dict[str, Job], data: list[bytes], form: str) -> BatchRecord:
        name = f"pla-{int(time.time())}-{len(lines)}.jsonl"
        try:
            file_id = await self._call(self.api.upload, b"".join(data), name)
        except FatalError:  # never sent: its reservations go (an online fallback may ask)
            for cid in lines:
                self._results.paid(cid, None)
            raise
        record = await asyncio.to_thread(self.store.add, file_id, form, lines)
        self._pending |= record.keys  # from here on a rerun finds it
        info = await self._call(self.api.create, file_id, self.metadata)
        await asyncio.to_thread(self.store.created, record.id, info.id, info.status)
        self.metrics.requests += len(lines)
        self.metrics.batches_submitted += 1
        self._show(info)
        return replace(record, batch_id=info.id, status=info.status)

    async def _call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """A Batch API call, retried like a request; a fatal error stops the run."""
        attempt = 0
        while True:
            try:
                found = await fn(*args)
            except RequestError as exc:
                fatal = is_fatal(exc, any_success=self._reached) or not exc.retryable
                if fatal or attempt >= self.max_rounds:
                    raise FatalError(exc) from exc
                attempt += 1
                await asyncio.sleep(self._backoff(exc, attempt))
            else:
                self._reached = True
                return found

    def _backoff(self, exc: RequestError, attempt: int) -> float:
        asked = retry_after(exc.headers, time.time()) if isinstance(exc, APIError) else None
        return asked if asked is not None else backoff(attempt, rng=self.rng)

    # --- waiting and collecting --------------------------------------------------------

    async def _wait(self, records: list[BatchRecord]) -> list[tuple[Job, str]]:
        """Poll until every batch ended; collect each as it does. What to ask again."""
        open_ = {r.id: r for r in records}
        again: list[tuple[Job, str]] = []
        delay = self.poll_s
        while True:
            for record in list(open_.values()):
                info = await self._refresh(record)
                if info is not None and record.batch_id != info.id:  # created or found now
                    record = open_[record.id] = replace(record, batch_id=info.id)
                if info is None:
                    why = f"batch {record.batch_id} is gone from the server"
                    again += [(job, why) for job in record.jobs.values()]
                    for cid in record.jobs:
                        self._results.paid(cid, None)
                elif info.done:
                    again += await self._results.collect(record, info)
                else:
                    continue
                await asyncio.to_thread(self.store.collected, record.id)
                self._pending -= record.keys
                del open_[record.id]
            if not open_:
                return again
            await asyncio.sleep(delay)
            delay = min(max(POLL_MAX_S, self.poll_s), delay * POLL_GROWTH)

    async def _refresh(self, record: BatchRecord) -> BatchInfo | None:
        """The batch's status now (created first when a run died before creating it);
        None when the server does not know it."""
        if record.batch_id is None:
            info = await self._call(self.api.find, record.input_file_id)
            if info is None:
                info = await self._call(self.api.create, record.input_file_id, self.metadata)
                self.metrics.batches_submitted += 1
                self.metrics.requests += len(record.jobs)
            await asyncio.to_thread(self.store.created, record.id, info.id, info.status)
            return info
        try:
            info = await self._call(self.api.retrieve, record.batch_id)
        except FatalError as fatal:
            if isinstance(fatal.error, NotFoundError):
                return None
            raise
        if not info.done and time.time() - record.created > STUCK_S:
            await self._call(self.api.cancel, info.id)
            info = replace(info, status="expired")
        await asyncio.to_thread(self.store.update, record.id, info.status, info.completed,
                                info.failed)
        self._show(info)
        return info

    def _show(self, info: BatchInfo) -> None:
        self.metrics.batches[info.id] = BatchProgress(info.id, info.status, info.total,
                                                      info.completed, info.failed)
