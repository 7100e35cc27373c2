"""Where answers land: validated by the task, kept, written to the cache, counted.

A packed answer is read per id; ids that are missing, invalid or with a wrong field
are asked again alone, never guessed; an answer with no JSON at all is asked again in
two halves. An answer with wrong fields (asked alone) is kept with those fields null,
and its problems listed, but never cached: a rerun asks for it again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ..protocol.packing import parse_pack
from ..report.metrics import Metrics
from ..tasks.base import FieldProblem, Task, Verdict
from .cache import Cache
from .pieces import Pieces

if TYPE_CHECKING:
    from ..semantic.stage import Hit

Job = tuple[str, ...]
RAW_PREVIEW_CHARS = 500  # of a refused answer, kept for the report's failures
Listener = Callable[[str, "str | None"], None]  # (piece key, answer or None if it failed)


class AnswerSink:
    """`answers[key]`: usable answers; `failed[key]`: (reason, the raw answer's first
    `RAW_PREVIEW_CHARS`, "…" when cut, or None); `problems[key]`: the wrong fields of a
    usable answer (it is not cached)."""

    def __init__(self, task: Task, pieces: Pieces, metrics: Metrics, *, namespace: str,
                 packed: bool) -> None:
        self.task = task
        self.pieces = pieces
        self.metrics = metrics
        self.namespace = namespace
        self.packed = packed
        self.answers: dict[str, str] = {}
        self.failed: dict[str, tuple[str, str | None]] = {}
        self.problems: dict[str, tuple[FieldProblem, ...]] = {}
        self.cache: Cache | None = None
        self.listener: Listener | None = None  # the semantic stage, when on

    async def load(self, cache: Cache | None) -> None:
        """Use `cache`: take the answers it has for this run's pieces (read on a thread:
        the event loop never waits for the disk), write new ones to it."""
        self.cache = cache
        if cache is None:
            return
        found = await asyncio.to_thread(_first_read, cache, list(self.pieces.text))
        self.answers.update(found)
        self.metrics.cache_hits = len(found)
        self.metrics.rows_done += self.pieces.settle_many(found)

    def todo(self) -> list[str]:
        return [k for k in self.pieces.text if k not in self.answers]

    def needed(self, key: str) -> bool:
        """`key` still wants an answer: it has none and did not fail for good."""
        return key not in self.answers and key not in self.failed

    def accept(self, job: Job, content: str) -> Sequence[Job]:
        """Record the answers in `content`; return what must be asked again."""
        if len(job) == 1 and not self.packed:
            self._record(job[0], content, self.task.check(content))
            return ()
        found = parse_pack(content, len(job))
        if found is None and len(job) > 1:
            half = (len(job) + 1) // 2  # nothing readable: ask again in smaller packs
            return (job[:half], job[half:])
        again: list[Job] = []
        for i, key in enumerate(job, 1):
            raw = (found or {}).get(i)
            if raw is None and len(job) > 1:
                again.append((key,))  # missing: alone, never guessed
                continue
            raw = content if raw is None else raw
            verdict = self.task.check(raw)
            if verdict.complete or len(job) == 1:
                self._record(key, raw, verdict)
            else:
                again.append((key,))  # invalid or a wrong field: alone, never guessed
        return again

    def fail(self, job: Job, error: str) -> None:
        """Every piece of `job` without an answer failed for good (its request did)."""
        for key in job:
            if self.needed(key):
                self.failed[key] = (error, None)
                self._settle(key, None)

    def reuse(self, hit: Hit) -> None:
        """A semantic hit: the answer of a near-identical text (not written to the cache)."""
        self.answers[hit.key] = hit.answer
        self.metrics.rows_done += self.pieces.settle(hit.key)

    def _record(self, key: str, raw: str, verdict: Verdict) -> None:
        """The first usable answer of a key wins; a key is settled once (a batch of an
        earlier run may answer a key again)."""
        if key in self.answers:
            return
        answer = verdict.answer
        settled = key in self.failed
        if answer is None:
            if settled:
                return
            cut = raw[:RAW_PREVIEW_CHARS] + "…" if len(raw) > RAW_PREVIEW_CHARS else raw
            self.failed[key] = (verdict.reason, cut)
        else:
            self.failed.pop(key, None)
            self.answers[key] = answer
            if verdict.problems:
                self.problems[key] = verdict.problems
            elif self.cache is not None:
                self.cache.save(key, answer, self.namespace)
        if not settled:
            self._settle(key, answer if verdict.complete else None)

    def _settle(self, key: str, answer: str | None) -> None:
        self.metrics.rows_done += self.pieces.settle(key)
        if self.listener is not None:
            self.listener(key, answer)


def _first_read(cache: Cache, keys: list[str]) -> dict[str, str]:
    """A run's first use of its cache, in one trip off the event loop: merge what a killed
    run left pending, then read the answers it has."""
    cache.merge_leftovers()
    return cache.get_many(keys)
