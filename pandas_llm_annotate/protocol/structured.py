"""Structured-output negotiation: ask for the strongest answer format a server takes.

Forms, strongest first:
- `json_schema`: `{"type": "json_schema", "json_schema": {...}}` (OpenAI, vLLM)
- `json_object+schema`: `{"type": "json_object", "schema": {...}}` (llama.cpp server)
- `json_object`: plain JSON mode
- `plain`: no `response_format`; the instructions alone

A server that rejects a form (400/422, or a 5xx whose body names
`response_format`) gets the next one; the choice is remembered per server and
model for the process, so an identical rejected request is never sent again.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from ..errors import APIError, RequestError

FORMS = ("json_schema", "json_object+schema", "json_object", "plain")
_chosen: dict[tuple[str, str], int] = {}
_lock = threading.Lock()


def pack_schema(size: int, value: dict[str, Any]) -> dict[str, Any]:
    """An object with keys "1".."size", each one answer (`value`: its schema)."""
    keys = [str(i) for i in range(1, size + 1)]
    return {
        "type": "object",
        "properties": {k: value for k in keys},
        "required": keys,
        "additionalProperties": False,
    }


def label_schema(labels: Sequence[str]) -> dict[str, Any]:
    """One row's answer: `{"label": <one of labels>}`."""
    return {
        "type": "object",
        "properties": {"label": {"type": "string", "enum": list(labels)}},
        "required": ["label"],
        "additionalProperties": False,
    }


def response_format(form: str, schema: dict[str, Any]) -> dict[str, Any] | None:
    if form == "json_schema":
        return {"type": "json_schema",
                "json_schema": {"name": "answers", "strict": True, "schema": schema}}
    if form == "json_object+schema":
        return {"type": "json_object", "schema": schema}
    if form == "json_object":
        return {"type": "json_object"}
    return None


def rejects_format(exc: RequestError) -> bool:
    """Did the server refuse the request because of its `response_format`?"""
    if not isinstance(exc, APIError):
        return False
    if exc.status in (400, 422):
        body = exc.body.lower()
        return any(word in body for word in ("response_format", "json_schema", "schema"))
    return exc.status >= 500 and "response_format" in exc.body


class Negotiator:
    """The form to use for one server + model, stepping down on rejection."""

    def __init__(self, base_url: str, model: str, *, start: str = "json_schema") -> None:
        self.key = (base_url, model)
        with _lock:
            self.index = _chosen.get(self.key, FORMS.index(start))

    @property
    def form(self) -> str:
        return FORMS[self.index]

    def step_down(self, used: str) -> bool:
        """The server rejected `used`: move past it. False when nothing is left."""
        with _lock:
            current = max(self.index, _chosen.get(self.key, 0))
            if FORMS.index(used) >= current:
                current = FORMS.index(used) + 1
            if current >= len(FORMS):
                return False
            self.index = _chosen[self.key] = current
            return True

    def confirm(self) -> None:
        with _lock:
            _chosen.setdefault(self.key, self.index)
