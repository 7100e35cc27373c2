"""Request building: a job (piece keys) becomes a chat-completions body, in the
strongest answer format the server takes (negotiated, `protocol/structured.py`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..dispatch.scheduler import Request
from ..errors import RequestError
from ..protocol.packing import ROW_OVERHEAD_TOKENS, auto_rows, pack_system, pack_user
from ..protocol.prompts import build_messages
from ..protocol.structured import Negotiator, rejects_format, response_format
from ..tasks.base import Task
from ..text import estimate_prompt_tokens

Job = tuple[str, ...]  # piece keys sent in one request


class RequestBuilder:
    """Bodies for one run: the task's prompt, the model's parameters, the format."""

    def __init__(self, task: Task, texts: Mapping[str, str], *, model: str,
                 temperature: float, packed: bool, structured: bool,
                 negotiator: Negotiator) -> None:
        self.task = task
        self.texts = texts
        self.model = model
        self.temperature = temperature
        self.packed = packed
        self.structured = structured
        self.formats = negotiator

    @property
    def form(self) -> str:
        """The answer format requests are built with now."""
        return self.formats.form if self.structured else "plain"

    def prepare(self, job: Job) -> Request[Job]:
        texts = [self.texts[k] for k in job]
        form = self.form
        if len(job) == 1 and not self.packed:
            system, user, max_tokens = self.task.system, texts[0], self.task.max_tokens
            schema = self.task.schema(None)
        else:
            system, user = pack_system(self.task.system, self.task.pack_answer), pack_user(texts)
            per_row = self.task.row_answer_tokens() + ROW_OVERHEAD_TOKENS
            max_tokens = len(job) * per_row + 16
            schema = self.task.schema(len(job))
        fmt = None if schema is None else response_format(form, schema)
        body: dict[str, Any] = {
            "model": self.model,
            "messages": build_messages(system, user),
            "temperature": self.temperature,
            "max_tokens": max_tokens,
        }
        if fmt is not None:
            body["response_format"] = fmt
        estimate = estimate_prompt_tokens(system) + estimate_prompt_tokens(user) + 8
        return Request(job, body, estimate, max_tokens, form if fmt is not None else "plain")

    def refresh(self, request: Request[Job]) -> Request[Job]:
        """`request` again if its answer format is still the one to use, else rebuilt."""
        if request.form == "plain" or request.form == self.form:
            return request
        return self.prepare(request.job)

    def reformat(self, request: Request[Job], error: RequestError) -> bool:
        """The server refused `request`'s answer format: step down (True) or not."""
        if request.form == "plain" or not rejects_format(error):
            return False
        return self.formats.step_down(request.form)

    def rows_per_request(self, setting: int | str, todo: Sequence[str],
                         token_bucket: float | None) -> int:
        """`rows_per_request`: the number given, or "auto" from the texts still to ask."""
        if setting != "auto":
            return int(setting)
        sample = [self.texts[k] for k in todo[:2000]]
        return auto_rows(sample, answer_tokens=self.task.max_tokens, token_bucket=token_bucket)
