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
# system prompt, max_tokens, response_format (or None), the system prompt's token estimate
_Shape = tuple[str, int, dict[str, Any] | None, int]


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
        self._shapes: dict[tuple[int | None, str], _Shape] = {}

    @property
    def form(self) -> str:
        """The answer format requests are built with now."""
        return self.formats.form if self.structured else "plain"

    def prepare(self, job: Job) -> Request[Job]:
        texts = [self.texts[k] for k in job]
        form = self.form
        single = len(job) == 1 and not self.packed
        system, max_tokens, fmt, system_tokens = self._shape(None if single else len(job), form)
        user = texts[0] if single else pack_user(texts)
        body: dict[str, Any] = {
            "model": self.model,
            "messages": build_messages(system, user),
            "temperature": self.temperature,
            "max_tokens": max_tokens,
        }
        if fmt is not None:
            body["response_format"] = fmt
        estimate = system_tokens + estimate_prompt_tokens(user) + 8
        return Request(job, body, estimate, max_tokens, form if fmt is not None else "plain")

    def _shape(self, rows: int | None, form: str) -> _Shape:
        """What requests of `rows` rows (None: one row, not packed) share, built once:
        the system prompt, max_tokens, the answer format and the system's estimate."""
        if (shape := self._shapes.get((rows, form))) is not None:
            return shape
        if rows is None:
            system, max_tokens = self.task.system, self.task.max_tokens
        else:
            system = pack_system(self.task.system, self.task.pack_answer)
            per_row = self.task.row_answer_tokens() + ROW_OVERHEAD_TOKENS
            max_tokens = rows * per_row + 16
        schema = self.task.schema(rows)
        fmt = None if schema is None else response_format(form, schema)
        shape = self._shapes[(rows, form)] = (system, max_tokens, fmt,
                                              estimate_prompt_tokens(system))
        return shape

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
