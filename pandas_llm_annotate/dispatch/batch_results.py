"""What a finished batch gave: its output and error files, line by line, become answers
handed on like online ones (`on_answer`), failures (`on_failure`), or jobs to ask again
with the reason; each request's reservation in the budget is settled by its usage."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from ..errors import BatchRequestError, MalformedResponse, RequestError
from ..errors import error_for_status as http_error
from ..protocol import batch_api
from ..protocol.batch_api import BatchAPI, BatchInfo, OutputLine
from ..protocol.transport import Completion, parse_completion
from ..report.metrics import Metrics
from .batch_store import BatchRecord, Job
from .budget import BatchHolds
from .scheduler import FatalError, Request


@dataclass
class Results:
    """Collects finished batches for one `BatchDispatcher` run (see its module doc)."""

    api: BatchAPI
    prepare: Callable[[Job], Request[Job]]
    on_answer: Callable[[Job, Completion], Sequence[Job]]
    on_failure: Callable[[Job, RequestError], None]
    needed: Callable[[str], bool]
    metrics: Metrics
    reformat: Callable[[Request[Job], RequestError], bool]
    holds: BatchHolds | None
    max_rounds: int
    backoff: Callable[[RequestError, int], float]

    def paid(self, cid: str, line: OutputLine | None) -> None:
        """Settle request `cid`'s reservation: by its line's usage, or nothing (no line)."""
        if self.holds is not None:
            answered = line is not None and line.status == 200
            body = line.body if line is not None else None
            self.holds.pay(cid, body.get("usage") if isinstance(body, dict) else None,
                           answered=answered)

    async def collect(self, record: BatchRecord, info: BatchInfo) -> list[tuple[Job, str]]:
        """Hand the batch's answers on; the jobs left without one, with the reason."""
        seen: set[str] = set()
        again: list[tuple[Job, str]] = []
        for file_id in (info.output_file_id, info.error_file_id):
            if file_id is None:
                continue
            async for line in self._lines(file_id, len(record.jobs)):
                job = record.jobs.get(line.custom_id)
                if job is None or line.custom_id in seen:
                    continue
                seen.add(line.custom_id)
                self.paid(line.custom_id, line)
                again += self._settle(job, line, record.form)
        why = f"batch {info.id} {info.status}" + (f": {info.errors[0]}" if info.errors else "")
        again += [(job, why) for cid, job in record.jobs.items() if cid not in seen]
        for cid in record.jobs.keys() - seen:
            self.paid(cid, None)
        return again

    async def _lines(self, file_id: str, lines: int) -> AsyncIterator[OutputLine]:
        """A result file's lines; a download that breaks is read again (lines already
        handed on are skipped by the caller)."""
        attempt = 0
        while True:
            try:
                async for line in self.api.lines(file_id, lines):
                    yield line
                return
            except RequestError as exc:
                if not exc.retryable or attempt >= self.max_rounds:
                    raise FatalError(exc) from exc
                attempt += 1
                await asyncio.sleep(self.backoff(exc, attempt))

    def prepared(self, job: Job) -> Request[Job] | None:
        """`job`'s request, for its bound and estimate; None for a job of a resumed batch
        whose texts are not in this run (its body cannot be built here)."""
        try:
            return self.prepare(job)
        except KeyError:
            return None

    def _settle(self, job: Job, line: OutputLine, form: str) -> list[tuple[Job, str]]:
        if not any(self.needed(k) for k in job):
            return []  # answered already (an earlier run collected part of this batch)
        error: RequestError
        if line.status is None:
            error = BatchRequestError(f"{line.code or 'no answer'}: {line.message}",
                                      code=line.code)
        elif line.status != 200:
            error = http_error(line.status, json.dumps(line.body), {}, batch_api.ENDPOINT)
            if self.reformat(Request(job, {}, 0, 0, form), error):
                return [(job, str(error))]  # asked again in a format the server takes
        else:
            try:
                completion = parse_completion(line.body, 0.0, {})
            except MalformedResponse as exc:
                error = exc
            else:
                request = self.prepared(job)
                self.metrics.batch_answered(
                    completion.prompt_tokens, completion.completion_tokens,
                    estimate=None if request is None else request.prompt_estimate)
                return [(again, "asked again alone after a packed answer missed it")
                        for again in self.on_answer(job, completion)]
        if not error.retryable:
            self.on_failure(job, error)
            return []
        return [(job, str(error))]
