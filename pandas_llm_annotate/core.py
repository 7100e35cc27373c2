"""The async core: plan → cache → chunk → schedule → parse → cache → broadcast."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from . import progress
from .cache import Cache, namespace_key, text_key
from .chunking import estimate_tokens, split_text
from .config import Settings, resolve
from .errors import RequestError
from .limiter import Limiter, shared_limiter
from .metrics import FAILURE_COLUMNS, Failure, Metrics, Report
from .packing import ROW_OVERHEAD_TOKENS, auto_rows, pack_system, pack_user, parse_pack
from .plan import Plan, broadcast, plan_column
from .prompts import build_messages, check_labels, merge_answers, normalize_answer, system_prompt
from .runner import run_sync
from .scheduler import FatalError, Request, Scheduler
from .structured import Negotiator, label_schema, pack_schema, rejects_format, response_format
from .transport import Completion, Transport

if TYPE_CHECKING:
    from .semantic.stage import Hit, SemanticStage

PREVIEW_CHARS = 80
Job = tuple[str, ...]  # piece keys sent in one request
_last: Run | None = None


def default_max_tokens(prompt: str | None, labels: Sequence[str] | None) -> int:
    """With labels: room for twice the longest label plus a few tokens (at least 16);
    32 for the default topic task; 512 for a free-form prompt. Servers charge
    max_tokens against a TPM limit, so a tight bound is faster there."""
    if labels:
        return max(16, 2 * max(estimate_tokens(label) for label in labels) + 8)
    return 32 if prompt is None else 512


def row_answer_tokens(max_tokens: int, labels: Sequence[str] | None) -> int:
    """Answer tokens one row needs inside a packed JSON answer."""
    if labels:
        return max(estimate_tokens(label) for label in labels) + 4
    return max_tokens


class Run:
    """One call of `annotate`: its plan, its state and its metrics."""

    def __init__(self, values: pd.Series, prompt: str | None, labels: Any,
                 settings: Settings) -> None:
        self.values = values
        self.settings = settings
        self.labels = check_labels(labels)
        self.lowercase = prompt is None and self.labels is None
        self.system = system_prompt(prompt, self.labels)
        self.max_tokens = settings.max_tokens or default_max_tokens(prompt, self.labels)
        self.packed = settings.rows_per_request != 1
        self.namespace = namespace_key(
            model=settings.model, base_url=settings.base_url, system=self.system,
            labels=self.labels, temperature=settings.temperature, max_tokens=self.max_tokens,
            packed=self.packed, structured=settings.structured,
        )
        self.plan: Plan = plan_column(values)
        self._split(self.plan.texts)
        self.metrics = Metrics(
            rows=self.plan.rows, missing=self.plan.missing, distinct=len(self.plan.texts),
            pieces=len(self.piece_text), rows_done=self.plan.missing,
            model=str(settings.model),
        )
        self.answers: dict[str, str] = {}
        self.failed: dict[str, tuple[str, str | None]] = {}
        self.stage: SemanticStage | None = None  # semantic=...: see semantic/stage.py

    def _split(self, texts: list[str]) -> None:
        """Chunk long texts; each distinct piece is asked once, whichever texts share it."""
        budget = self.settings.max_chunk_tokens
        self.piece_keys: list[list[str]] = []
        self.piece_text: dict[str, str] = {}
        self.users: dict[str, list[int]] = {}
        for tid, text in enumerate(texts):
            chunks = [text] if len(text) <= budget else split_text(text, budget)
            keys = []
            for chunk in chunks:
                key = text_key(self.namespace, chunk)
                keys.append(key)
                self.piece_text[key] = chunk
                self.users.setdefault(key, []).append(tid)
            self.piece_keys.append(keys)
        self.pending = np.array([len(k) for k in self.piece_keys], dtype=np.int64)
        self.rows_per_text = self.plan.rows_per_text()

    def _done(self, key: str) -> None:
        for tid in self.users[key]:
            self.pending[tid] -= 1
            if self.pending[tid] == 0:
                self.metrics.rows_done += int(self.rows_per_text[tid])

    async def execute(self) -> pd.Series:
        s = self.settings
        cache = None if s.cache is False else Cache.open(None if s.cache is True else s.cache)
        try:
            async with progress.show(self.metrics, s.progress):
                try:
                    if cache is not None:
                        self.answers.update(cache.get_many(list(self.piece_text)))
                        self.metrics.cache_hits = len(self.answers)
                        for key in self.answers:
                            self._done(key)
                    await self._request(cache)
                except FatalError as fatal:
                    self.metrics.finish("failed", str(fatal.error))
                    raise fatal.error from None
                except (asyncio.CancelledError, KeyboardInterrupt):
                    self.metrics.finish("interrupted", self._interrupted_message())
                    raise
                except BaseException as exc:
                    self.metrics.finish("failed", repr(exc))
                    raise
                self.metrics.finish("finished")
        finally:
            if cache is not None:
                cache.close()
        return broadcast(self.plan, self._text_answers(), self.values)

    def _interrupted_message(self) -> str:
        """How much of the work is safe: rows whose every piece has an answer."""
        rows = sum(int(self.rows_per_text[tid]) for tid, keys in enumerate(self.piece_keys)
                   if all(k in self.answers for k in keys))
        return f"interrupted, {rows} rows saved in cache"

    async def _request(self, cache: Cache | None) -> None:
        todo = [k for k in self.piece_text if k not in self.answers]
        if not todo:
            return
        s = self.settings
        limiter = shared_limiter(
            s.base_url, s.api_key, str(s.model), max_concurrency=s.max_concurrency,
            rpm=s.rpm, tpm=s.tpm, now=time.monotonic(), timeout=s.timeout,
        )
        self.limiter = limiter
        self.formats = Negotiator(s.base_url, str(s.model))
        k = self._rows_per_request(todo, limiter)
        self.metrics.rows_per_request_target = k
        transport = Transport(s.base_url, api_key=s.api_key, timeout=s.timeout,
                              max_connections=s.max_concurrency)

        async def send(body: dict[str, Any]) -> Completion:
            return await transport.complete(body, stream=s.stream)

        def on_answer(job: Job, completion: Completion) -> Sequence[Job]:
            self.metrics.packed(len(job))
            if self.settings.structured and (self.labels or self.packed):
                self.metrics.answer_format = self.formats.form
            again = self._accept(job, completion.content, cache)
            self.metrics.reasked += len(again)
            return again

        def on_failure(job: Job, error: RequestError) -> None:
            for key in job:
                self.failed[key] = (str(error), None)
                self._done(key)
                if self.stage is not None:
                    self.stage.answered(key, None)

        scheduler: Scheduler[Job] = Scheduler(
            prepare=self._prepare, send=send, on_answer=on_answer, on_failure=on_failure,
            limiter=limiter, metrics=self.metrics, max_concurrency=s.max_concurrency,
            max_retries=s.max_retries, reformat=self._reformat, rng=random.Random(),
        )
        jobs = (tuple(todo[i : i + k]) for i in range(0, len(todo), k))
        if s.semantic:  # imported only when asked for: the core install has no torch
            from .semantic.stage import open_stage

            self.stage = open_stage(
                todo, self.piece_text, setting=s.semantic, embedder=s.embedder,
                namespace=self.namespace, cache_path=None if cache is None else cache.path,
                rows_per_job=k, on_hit=self._reuse, metrics=self.metrics,
            )
        try:
            async with transport:
                await scheduler.run(jobs if self.stage is None else self.stage.jobs())
        finally:
            if self.stage is not None:
                self.stage.close()

    def _rows_per_request(self, todo: list[str], limiter: Limiter) -> int:
        rows = self.settings.rows_per_request
        if rows != "auto":
            return rows
        bucket = limiter.tokens.capacity if limiter.tokens is not None else None
        sample = [self.piece_text[k] for k in todo[:2000]]
        return auto_rows(sample, answer_tokens=self.max_tokens, token_bucket=bucket)

    def _prepare(self, job: Job) -> Request[Job]:
        texts = [self.piece_text[k] for k in job]
        form = self.formats.form if self.settings.structured else "plain"
        if len(job) == 1 and not self.packed:
            system, user, max_tokens = self.system, texts[0], self.max_tokens
            fmt = response_format(form, label_schema(self.labels)) if self.labels else None
        else:
            system, user = pack_system(self.system), pack_user(texts)
            per_row = row_answer_tokens(self.max_tokens, self.labels) + ROW_OVERHEAD_TOKENS
            max_tokens = len(job) * per_row + 16
            fmt = response_format(form, pack_schema(len(job), self.labels))
        extra: dict[str, Any] = {} if fmt is None else {"response_format": fmt}
        body = {
            "model": self.settings.model,
            "messages": build_messages(system, user),
            "temperature": self.settings.temperature,
            "max_tokens": max_tokens,
            **extra,
        }
        estimate = estimate_tokens(system) + estimate_tokens(user) + 8
        return Request(job, body, estimate, max_tokens, form if extra else "plain")

    def _reformat(self, request: Request[Job], error: RequestError) -> bool:
        if request.form == "plain" or not rejects_format(error):
            return False
        return self.formats.step_down(request.form)

    def _accept(self, job: Job, content: str, cache: Cache | None) -> Sequence[Job]:
        """Record the answers in `content`; return what must be asked again."""
        if len(job) == 1 and not self.packed:
            self._record(job[0], content, cache)
            return ()
        found = parse_pack(content, len(job))
        if found is None and len(job) > 1:
            half = (len(job) + 1) // 2  # nothing readable: ask again in smaller packs
            return (job[:half], job[half:])
        again: list[Job] = []
        for i, key in enumerate(job, 1):
            raw = (found or {}).get(i)
            if raw is not None and self._valid(raw) is not None:
                self._record(key, raw, cache)
            elif len(job) > 1:
                again.append((key,))  # missing or invalid: alone, never guessed
            else:
                self._record(key, raw if raw is not None else content, cache)
        return again

    def _valid(self, raw: str) -> str | None:
        return normalize_answer(raw, self.labels, lowercase=self.lowercase)

    def _record(self, key: str, raw: str, cache: Cache | None) -> None:
        answer = self._valid(raw)
        if answer is None:
            why = "answer is not one of the labels" if self.labels else "empty answer"
            self.failed[key] = (why, raw)
        else:
            self.answers[key] = answer
            if cache is not None:
                cache.put(key, answer, self.namespace)
        self._done(key)
        if self.stage is not None:
            self.stage.answered(key, answer)

    def _reuse(self, hit: Hit) -> None:
        """A semantic hit: the answer of a near-identical text (not written to the cache)."""
        self.answers[hit.key] = hit.answer
        self._done(hit.key)

    def _text_answers(self) -> list[str | None]:
        out: list[str | None] = []
        for keys in self.piece_keys:
            if all(k in self.answers for k in keys):
                parts = [self.answers[k] for k in keys]
                out.append(parts[0] if len(parts) == 1 else merge_answers(parts, self.labels))
            else:
                out.append(None)
        return out

    def failures(self) -> list[Failure]:
        found = []
        for tid, keys in enumerate(self.piece_keys):
            for i, key in enumerate(keys):
                if key in self.failed:
                    error, raw = self.failed[key]
                    if len(keys) > 1:
                        error = f"chunk {i + 1}/{len(keys)}: {error}"
                    found.append(Failure(tid, error, raw))
                    break
        return found

    def report(self) -> Report:
        failures = self.failures()
        self.metrics.failures = failures
        by_text = {f.text_id: f for f in failures}
        rows, codes = self.plan.rows_of(list(by_text))
        table = pd.DataFrame(
            {
                "index": list(self.values.index[rows]),
                "text": [self.plan.texts[c][:PREVIEW_CHARS] for c in codes],
                "error": [by_text[c].error for c in codes],
                "raw_answer": [by_text[c].raw_answer for c in codes],
            },
            columns=FAILURE_COLUMNS,
        )
        if self.stage is None:
            return Report.from_metrics(self.metrics, table)
        from .semantic.audit import hits_table

        hits = hits_table(self.plan, self.values.index, self.users, self.stage.hits)
        return Report.from_metrics(self.metrics, table, semantic_hits=hits)


def _series(values: Any) -> pd.Series:
    if isinstance(values, pd.Series):
        return values
    return pd.Series(values)


async def aannotate(values: Any, prompt: str | None = None, *, labels: Any = None,
                    **options: Any) -> pd.Series:
    """Async twin of `annotate`."""
    global _last
    run = Run(_series(values), prompt, labels, resolve(**options).check())
    _last = run
    return await run.execute()


def annotate(values: Any, prompt: str | None = None, *, labels: Any = None,
             **options: Any) -> pd.Series:
    """Label every value with the LLM; see `DataFrameAccessor.annotate` for the arguments."""
    return run_sync(aannotate(values, prompt, labels=labels, **options))


def last_report() -> Report | None:
    """The report of the last run in this process (also after an interrupt), or None."""
    return None if _last is None else _last.report()
