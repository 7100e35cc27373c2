"""Answers: a chat completion's body (JSON, or server-sent events) checked shape by shape.

Anything not shaped as the OpenAI API documents it is a `MalformedResponse` for that
one request (retried, then NaN with the reason), never an exception that ends the run.
No I/O here: the transport reads the bytes (bounded) and hands them over.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..errors import ConnectionLost, MalformedResponse

MAX_TOKEN_COUNT = 10**9  # a usage count above this is nonsense, not a long answer


@dataclass(frozen=True)
class Completion:
    """One successful answer."""

    content: str
    latency: float
    ttft: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)


def parse_json(raw: bytes, latency: float, headers: Mapping[str, str]) -> Completion:
    """The answer in a `chat.completion` body."""
    return parse_completion(_object(raw, "The answer body"), latency, headers, raw)


def parse_completion(data: Any, latency: float, headers: Mapping[str, str],
                     raw: bytes | None = None) -> Completion:
    """The answer in a parsed `chat.completion` object (e.g. a batch output line's body);
    `raw` is what error messages preview (default: the object as JSON)."""
    if raw is None:
        raw = json.dumps(data, default=str)[:400].encode()
    if not isinstance(data, dict):
        raise _malformed("The answer body is not a JSON object", raw)
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise _malformed("The answer has no list of choices", raw)
    message = choices[0].get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str):
        raise _malformed("The answer has no text content", raw)
    prompt, completion = usage_counts(data.get("usage"), raw)
    return Completion(content=content, latency=latency, prompt_tokens=prompt,
                      completion_tokens=completion, headers=headers)


def usage_counts(usage: object, raw: bytes) -> tuple[int | None, int | None]:
    """(prompt_tokens, completion_tokens) of a `usage` object; None where not given."""
    if usage is None:
        return None, None
    if not isinstance(usage, dict):
        raise _malformed("`usage` is not an object", raw)
    counts = []
    for name in ("prompt_tokens", "completion_tokens"):
        value = usage.get(name)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or not 0 <= value <= MAX_TOKEN_COUNT):
            raise _malformed(f"`usage.{name}` is not a token count", raw)
        counts.append(value)
    return counts[0], counts[1]


class EventStream:
    """The answer of a `stream=True` request, fed one `data:` payload at a time."""

    def __init__(self, start: float) -> None:
        self.start = start
        self.parts: list[str] = []
        self.ttft: float | None = None
        self.usage: tuple[int | None, int | None] = (None, None)
        self.done = self.finished = False

    def feed(self, line: bytes) -> bool:
        """Take one line of the stream; True at `data: [DONE]`."""
        if not line.startswith(b"data:"):
            return False  # comments, `event:` lines, blank separators
        payload = line[5:].strip()
        if payload == b"[DONE]":
            self.done = True
            return True
        chunk = _object(payload, "A stream event")
        if chunk.get("error"):
            raise _malformed("The stream carried an error", payload)
        choices = chunk.get("choices") or []
        if not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices):
            raise _malformed("A stream event's choices are not a list of objects", payload)
        if chunk.get("usage") is not None:
            self.usage = usage_counts(chunk["usage"], payload)
        for choice in choices:
            delta = choice.get("delta") or {}
            if not isinstance(delta, dict):
                raise _malformed("A stream delta is not an object", payload)
            text = delta.get("content")
            if not isinstance(text, (str, type(None))):
                raise _malformed("A stream delta's content is not text", payload)
            if text:
                if self.ttft is None:
                    self.ttft = time.perf_counter() - self.start
                self.parts.append(text)
            self.finished = self.finished or bool(choice.get("finish_reason"))
        return False

    def completion(self, headers: Mapping[str, str]) -> Completion:
        """The whole answer, once the stream has ended."""
        if not (self.done or self.finished):
            raise ConnectionLost("The stream ended before the answer was complete.")
        return Completion(
            content="".join(self.parts), latency=time.perf_counter() - self.start,
            ttft=self.ttft, prompt_tokens=self.usage[0], completion_tokens=self.usage[1],
            headers=headers,
        )


def _object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        data = orjson.loads(raw)
    except ValueError:  # what orjson refuses and `json` takes (NaN, a lone surrogate)
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError) as exc:  # nesting too deep: RecursionError
            raise _malformed(f"{what} is not JSON", raw) from exc
    if not isinstance(data, dict):
        raise _malformed(f"{what} is not a JSON object", raw)
    return data


def _malformed(problem: str, raw: bytes) -> MalformedResponse:
    return MalformedResponse(f"{problem}: {raw[:200]!r}. Not an OpenAI-style answer: check "
                             "that base_url points at an OpenAI-compatible API.")
