"""The OpenAI wire format's edges: request validation and error responses."""

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
