"""One run of a task: plan → cache → chunk → schedule → parse → cache → broadcast.

The run wires the pipeline's parts and owns nothing else: the task (what is asked, how
an answer is checked, what the result looks like: `tasks/`), `Pieces` (chunks and which
rows wait for them), `RequestBuilder` (bodies), `AnswerSink` (validation, cache
writes), the scheduler and limiter (dispatch, ratelimit), the semantic stage when on.
Drawing progress is not its business: the sync/async edge (`api.py`) does that.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd

from ..config import Settings
from ..dispatch.scheduler import FatalError, Scheduler
from ..errors import RequestError
from ..protocol.structured import Negotiator
from ..protocol.transport import Completion, Transport
from ..ratelimit.registry import run_limits
from ..report.metrics import Metrics
from ..report.report import Report
from ..tasks.base import Task
from .cache import Cache, namespace_key
from .identity import server_identity
from .pieces import Pieces
from .plan import plan_column
from .requests import Job, RequestBuilder
from .sink import AnswerSink
from .tables import failures_table, hits_table

if TYPE_CHECKING:
    from ..semantic.stage import SemanticStage


class Run:
    """One call of `annotate` or `extract`: its plan, pieces, answers and metrics."""

    def __init__(self, values: pd.Series, task: Task, settings: Settings) -> None:
        self.values = values
        self.settings = settings
        self.task = task
        self.packed = settings.rows_per_request != 1
        self.namespace = namespace_key(
            model=settings.model, server=server_identity(settings.base_url,
                                                         settings.cache_namespace),
            system=self.task.system, **self.task.key_parts(), temperature=settings.temperature,
            max_tokens=self.task.max_tokens, packed=self.packed, structured=settings.structured,
        )
        self.plan = plan_column(values)
        self.pieces = Pieces(self.plan.texts, self.namespace, settings.max_chunk_tokens,
                             self.plan.rows_per_text())
        self.metrics = Metrics(
            rows=self.plan.rows, missing=self.plan.missing, distinct=len(self.plan.texts),
            pieces=len(self.pieces), rows_done=self.plan.missing, model=str(settings.model),
        )
        self.sink = AnswerSink(self.task, self.pieces, self.metrics, namespace=self.namespace,
                               packed=self.packed)
        self.stage: SemanticStage | None = None  # semantic=...: see semantic/stage.py

    async def execute(self) -> pd.Series | pd.DataFrame:
        """Ask for what is missing; the answers, one per row, aligned to the index."""
        s = self.settings
        cache: Cache | None = None
        try:
            if s.cache is not False:
                cache = Cache.open(None if s.cache is True else s.cache)
            await self.sink.load(cache)
            await self._ask(self.sink.todo())
        except FatalError as fatal:
            self.metrics.finish("failed", str(fatal.error))
            raise fatal.error from fatal.error.__cause__  # the cause kept, not FatalError
        except (asyncio.CancelledError, KeyboardInterrupt):
            rows = self.pieces.rows_answered(self.sink.answers)
            self.metrics.finish("interrupted", f"interrupted, {rows} rows saved in cache")
            raise
        except BaseException as exc:
            self.metrics.finish("failed", repr(exc))
            raise
        finally:
            if cache is not None:
                await asyncio.to_thread(cache.close)  # writes what is queued, off the loop
                self.metrics.note(cache.notice)
        self.metrics.finish("finished")
        answers = self.pieces.text_answers(self.sink.answers, self.task.merge)
        return self.task.output(answers, self.plan.take(), self.values)

    async def _ask(self, todo: list[str]) -> None:
        if not todo:
            return
        s = self.settings
        limits = run_limits(s.base_url, s.api_key, str(s.model), max_concurrency=s.max_concurrency,
                            rpm=s.rpm, tpm=s.tpm, timeout=s.timeout)
        builder = RequestBuilder(
            self.task, self.pieces.text, model=str(s.model), temperature=s.temperature,
            packed=self.packed, structured=s.structured,
            negotiator=Negotiator(s.base_url, str(s.model)),
        )
        k = builder.rows_per_request(s.rows_per_request, todo, limits.token_capacity)
        self.metrics.rows_per_request_target = k
        transport = Transport(s.base_url, api_key=s.api_key, timeout=s.timeout,
                              max_connections=s.max_concurrency)
        structured_answers = s.structured and (self.task.schema(None) is not None or self.packed)

        async def send(body: dict[str, object]) -> Completion:
            return await transport.complete(body, stream=s.stream)

        def on_answer(job: Job, completion: Completion) -> Sequence[Job]:
            self.metrics.packed(len(job))
            if structured_answers:
                self.metrics.answer_format = builder.form
            again = self.sink.accept(job, completion.content)
            self.metrics.reasked += len(again)
            return again

        def on_failure(job: Job, error: RequestError) -> None:
            self.sink.fail(job, str(error))

        scheduler: Scheduler[Job] = Scheduler(
            prepare=builder.prepare, send=send, on_answer=on_answer, on_failure=on_failure,
            limiter=limits, metrics=self.metrics, max_concurrency=s.max_concurrency,
            max_retries=s.max_retries, reformat=builder.reformat, rng=random.Random(),
        )
        jobs = (tuple(todo[i : i + k]) for i in range(0, len(todo), k))
        if s.semantic:  # imported only when asked for: the core install has no torch
            from ..semantic.stage import open_stage

            self.stage = open_stage(
                todo, self.pieces.text, setting=s.semantic, embedder=s.embedder,
                namespace=self.namespace,
                cache_path=None if self.sink.cache is None else self.sink.cache.path,
                rows_per_job=k, on_hit=self.sink.reuse, metrics=self.metrics,
            )
            self.sink.listener = self.stage.answered
        try:
            with limits:
                async with transport:
                    await scheduler.run(jobs if self.stage is None else self.stage.jobs())
        finally:
            if self.stage is not None:
                self.stage.close()

    def report(self) -> Report:
        """The run's report now (frozen: later changes to the run do not reach it)."""
        m = self.metrics
        unasked = f"not asked: the run {m.status}" + (f" ({m.message})" if m.message else "")
        if self.task.field_names:  # a line per wrong field that is null in the row's answer
            merged = [None if a is None else self.task.present(a)
                      for a in self.pieces.text_answers(self.sink.answers, self.task.merge)]
            failures = failures_table(
                self.plan, self.values.index, self.pieces, self.sink.failed, self.sink.answers,
                unasked, self.sink.problems, lambda tid: merged[tid] or frozenset())
        else:
            failures = failures_table(self.plan, self.values.index, self.pieces,
                                      self.sink.failed, self.sink.answers, unasked)
        hits = None
        if self.stage is not None:
            hits = hits_table(self.plan, self.values.index, self.pieces.users, self.stage.hits)
        return Report.from_metrics(self.metrics, failures, semantic_hits=hits)
