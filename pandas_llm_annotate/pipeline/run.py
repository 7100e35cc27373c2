"""One run of a task: plan → cache → chunk → schedule → parse → cache → broadcast.

The run wires the pipeline's parts and owns nothing else: the task (what is asked, how
an answer is checked, what the result looks like: `tasks/`), `Pieces` (chunks and which
rows wait for them), `RequestBuilder` (bodies), `AnswerSink` (validation, cache
writes), the scheduler and limiter (dispatch, ratelimit), the semantic stage when on.
Drawing progress is not its business: the sync/async edge (`api.py`) does that.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..config import Settings
from ..dispatch.batch import BatchDispatcher
from ..dispatch.budget import Budget, BudgetReached
from ..dispatch.scheduler import FatalError, Scheduler
from ..dispatch.servers import Farm
from ..errors import ConfigError, RequestError
from ..protocol.batch_api import TERMINAL, BatchAPI
from ..protocol.structured import Negotiator
from ..protocol.transport import Completion, Transport
from ..ratelimit.registry import run_limits
from ..ratelimit.run_limits import RunLimits
from ..redact import redact_url
from ..report.metrics import Metrics, ServerStats
from ..report.pricing import Price, price_of
from ..report.report import Report
from ..tasks.base import Task
from .batch_state import BatchState, RunStore
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
            model=settings.model, server=server_identity(settings.base_urls,
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
            price=settings.price, max_cost=settings.max_cost,
        )
        self.budget = None if settings.max_cost is None else Budget(
            settings.max_cost, self._price_for_budget())
        self.sink = AnswerSink(self.task, self.pieces, self.metrics, namespace=self.namespace,
                               packed=self.packed)
        self.stage: SemanticStage | None = None  # semantic=...: see semantic/stage.py
        self.batch_state: BatchState | None = None  # batch=True: see batch_state.py
        self.metrics.batch = settings.batch

    def _price_for_budget(self) -> Price:
        price = self.settings.price or price_of(self.settings.model)
        if price is None:
            raise ConfigError(
                f"max_cost needs the price of {self.settings.model!r}, which is not in the "
                "known list: pass price=(input, output) in USD per 1M tokens, e.g. "
                "price=(0.15, 0.60).")
        return price

    async def execute(self) -> pd.Series | pd.DataFrame:
        """Ask for what is missing; the answers, one per row, aligned to the index."""
        s = self.settings
        cache: Cache | None = None
        try:
            if s.cache is not False:
                cache = Cache.open(None if s.cache is True else s.cache)
            await self.sink.load(cache)
            await self._ask(self.sink.todo())
        except BudgetReached:
            self.metrics.finish("budget", self._budget_message())
        except FatalError as fatal:
            self.metrics.finish("failed", str(fatal.error))
            raise fatal.error from fatal.error.__cause__  # the cause kept, not FatalError
        except (asyncio.CancelledError, KeyboardInterrupt):
            rows = self.pieces.rows_answered(self.sink.answers)
            self.metrics.finish("interrupted", f"interrupted, {rows} rows saved in cache"
                                + self._batches_left())
            raise
        except BaseException as exc:
            self.metrics.finish("failed", repr(exc))
            raise
        finally:
            if self.batch_state is not None:
                self.batch_state.close()
            if cache is not None:
                u = self.metrics.usage
                await asyncio.to_thread(self._close, cache, u.requests, u.estimated_prompt,
                                        u.prompt, u.completion, u.latency, u.timed)
                self.metrics.note(cache.notice)
        self.metrics.finish("finished")
        answers = self.pieces.text_answers(self.sink.answers, self.task.merge)
        return self.task.output(answers, self.plan.take(), self.values)

    def _batches_left(self) -> str:
        left = [b.id for b in self.metrics.batches.values() if b.status not in TERMINAL]
        return (f"; {len(left)} {'batch' if len(left) == 1 else 'batches'} still running on "
                "the server: the same call collects the answers, pla.cancel_batches() "
                "cancels") if left else ""

    def _close(self, cache: Cache, *usage: Any) -> None:
        """Write what is queued and the run's usage (for estimates), then close: off the loop."""
        cache.close_writer()
        cache.add_usage(self.namespace, *usage)
        cache.close()

    async def _ask(self, todo: list[str]) -> None:
        if not todo:
            return
        s = self.settings
        farm = Farm(several=len(s.base_urls) > 1)  # several servers: see dispatch/servers.py
        limits: list[RunLimits] = []
        for url in s.base_urls:  # each its own limiter; the run's rpm/tpm shared by all
            limits.append(run_limits(url, s.api_key, str(s.model),
                                     max_concurrency=s.max_concurrency, rpm=s.rpm, tpm=s.tpm,
                                     timeout=s.timeout, share=limits[0] if limits else None))
        servers = [self._server(u, lim, farm) for u, lim in zip(s.base_urls, limits, strict=True)]
        depths = [d for lim in limits if (d := lim.token_capacity) is not None]
        k = servers[0][0].rows_per_request(s.rows_per_request, todo, min(depths, default=None))
        self.metrics.rows_per_request_target = k
        jobs = (tuple(todo[i : i + k]) for i in range(0, len(todo), k))
        if s.batch:  # one server (config.py checks): the Batch API instead of the scheduler
            builder, transport, scheduler = servers[0]
            dispatcher = BatchDispatcher(
                api=BatchAPI(transport, timeout=s.timeout), store=self._batch_store(),
                prepare=builder.prepare, on_answer=scheduler.on_answer,
                on_failure=scheduler.on_failure, needed=self.sink.needed, metrics=self.metrics,
                max_rounds=s.max_retries, poll_s=s.batch_poll_s, reformat=builder.reformat,
                fallback=scheduler.run if s.batch_fallback == "online" else None,
                metadata={"source": "pandas-llm-annotate"}, budget=self.budget,
            )
            with limits[0]:
                async with transport:
                    await dispatcher.run(jobs)
            return
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
            async with contextlib.AsyncExitStack() as stack:
                for lim, (_, transport, _) in zip(limits, servers, strict=True):
                    stack.enter_context(lim)
                    await stack.enter_async_context(transport)
                await farm.run([scheduler for _, _, scheduler in servers],
                               jobs if self.stage is None else self.stage.jobs())
        finally:
            if farm.several:
                self.metrics.window = sum(lim.limit for lim in limits)
            if self.stage is not None:
                self.stage.close()

    def _server(self, url: str, limits: RunLimits,
                farm: Farm) -> tuple[RequestBuilder, Transport, Scheduler[Job]]:
        """What one server needs: its answer format (negotiated per server), its
        transport (one session) and its scheduler over its limits."""
        s = self.settings
        builder = RequestBuilder(
            self.task, self.pieces.text, model=str(s.model), temperature=s.temperature,
            packed=self.packed, structured=s.structured, negotiator=Negotiator(url, str(s.model)),
        )
        transport = Transport(url, api_key=s.api_key, timeout=s.timeout,
                              max_connections=s.max_concurrency,
                              max_response_bytes=s.max_response_bytes)
        structured_answers = s.structured and (self.task.schema(None) is not None or self.packed)
        name = redact_url(url)
        if name in self.metrics.servers:  # the same URL with other credentials
            name = f"{name} ({len(farm.servers) + 1})"
        stats = ServerStats()
        if farm.several:
            self.metrics.servers[name] = stats
        server = farm.add(name, partial(transport.complete, stream=s.stream), stats)

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
            prepare=builder.prepare, send=server.send, on_answer=on_answer,
            on_failure=on_failure, limiter=limits, metrics=self.metrics,
            max_concurrency=s.max_concurrency, max_retries=s.max_retries,
            reformat=builder.reformat, refresh=builder.refresh, rng=random.Random(),
            budget=self.budget,
            max_wait=s.max_wait, health=server if farm.several else None,
            early_headers=True,
        )
        return builder, transport, scheduler

    def _budget_message(self) -> str:
        """What was spent, and what the texts not asked would cost (at the mean cost of
        the answered ones, else the bound of one request each)."""
        assert self.budget is not None
        b, m = self.budget, self.metrics
        left = [k for k in self.pieces.text
                if k not in self.sink.answers and k not in self.sink.failed]
        per_piece = b.spent / m.packed_rows if m.packed_rows else b.bound(
            self.task.max_tokens * 4, self.task.max_tokens)
        return (f"stopped at the budget: spent ${b.spent:.4f} of max_cost ${b.cap:.4f}; the "
                f"{len(left):,} texts not asked would cost about ${per_piece * len(left):.4f} "
                "more. A rerun with a higher max_cost asks only for them")

    def _batch_store(self) -> RunStore:
        """The run's batches in the cache file (in memory with cache=False)."""
        cache = self.sink.cache
        if self.batch_state is None:
            self.batch_state = BatchState.open(cache.path if cache is not None else None)
        return self.batch_state.bind(
            namespace=self.namespace, base_url=self.settings.base_urls[0],
            model=str(self.settings.model), on_error=self.metrics.note,
            flush=cache.flush if cache is not None else lambda: True)

    def report(self) -> Report:
        """The run's report now (frozen: later changes to the run do not reach it)."""
        m = self.metrics
        why = {"budget": "the budget was reached", "interrupted": "the run was interrupted"}
        unasked = f"not asked: {why.get(m.status, f'the run {m.status}')}" + (
            f" ({m.message})" if m.message else "")
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
            hits = hits_table(self.plan, self.values.index, self.pieces.users_of,
                              self.stage.hits)
        return Report.from_metrics(self.metrics, failures, semantic_hits=hits)
