"""The OpenAI wire format's edges: request validation (a chat body, a batch input file)
and error responses."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

JSON = "application/json"


def error(
    status: int,
    message: str,
    type_: str,
    code: str | None,
    headers: dict[str, str] | None = None,
    param: str | None = None,
) -> web.Response:
    """An OpenAI-style error response."""
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return web.Response(
        status=status, body=json.dumps(body).encode(), content_type=JSON, headers=headers
    )


def bad_request(message: str, param: str | None = None) -> web.Response:
    return error(400, message, "invalid_request_error", None, param=param)


def validate(body: Any) -> tuple[str, str | None] | None:
    """(message, param) describing what is wrong with a request body."""
    if not isinstance(body, dict):
        return "The request body must be a JSON object.", None
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return "You must provide a model parameter.", "model"
    messages = body.get("messages")
    if (
        not isinstance(messages, list)
        or not messages
        or not all(isinstance(m, dict) for m in messages)
    ):
        return "'messages' must be a non-empty array of objects.", "messages"
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 1
        ):
            return f"'{name}' must be a positive integer.", name
    return None


def batch_lines(raw: bytes, endpoint: str,
                most: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The request lines of a batch input file, and what is wrong with it (OpenAI's
    `errors.data` items: code, message, param, line), empty when it validates."""
    lines: list[dict[str, Any]] = []
    problems: list[dict[str, Any]] = []
    seen: set[str] = set()
    models: set[str] = set()
    for n, text in enumerate(raw.decode("utf-8", "replace").splitlines(), 1):
        if not text.strip():
            continue
        try:
            line = json.loads(text)
        except ValueError:
            line = None
        body = line.get("body") if isinstance(line, dict) else None
        if not isinstance(body, dict) or not isinstance(line.get("custom_id"), str):
            problems.append(_problem(n, "invalid_json_line", "Not a request line."))
        elif line["custom_id"] in seen:
            problems.append(_problem(n, "duplicate_custom_id",
                                     f"The custom_id {line['custom_id']!r} is not unique."))
        elif line.get("method") != "POST" or line.get("url") != endpoint:
            problems.append(_problem(n, "invalid_url",
                                     f"Each line must be a POST to {endpoint}."))
        else:
            seen.add(line["custom_id"])
            models.add(str(body.get("model")))
            lines.append(line)
    if len(models) > 1:
        problems.append(_problem(None, "mixed_models", "All requests must use one model."))
    if len(lines) > most:
        problems.append(_problem(None, "too_many_requests",
                                 f"A batch can hold at most {most:,} requests."))
    if not lines and not problems:
        problems.append(_problem(None, "empty_file", "The input file has no requests."))
    return lines, problems


def _problem(line: int | None, code: str, message: str) -> dict[str, Any]:
    return {"code": code, "message": message, "param": None, "line": line}
