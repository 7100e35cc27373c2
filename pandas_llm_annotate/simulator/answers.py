"""Deterministic answers for the simulator.

Same request, same answer, whatever the timing: the answer depends only on
the text of the last user message, the labels offered (a ``Labels:`` block
in a system/user message, or the first ``enum`` of a JSON schema in
``response_format``) and the schema shape.
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import lru_cache
from typing import Any

from ..text import CJK_LETTER
from ..text import estimate_tokens as _estimate

__all__ = [
    "answer_messages",
    "answer_text",
    "estimate_tokens",
    "message_text",
    "parse_labels",
]

_CJK = CJK_LETTER
_LATIN_WORD = re.compile("[A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f]+")
_WORD = re.compile(r"[^\W_]+")
_LABEL_SPLIT = re.compile(r"[\s_\-]+")
_MIN_WORD = 3


def estimate_tokens(text: str) -> int:
    """The token count the simulator reports: the client's estimate, at least 1."""
    return max(1, _estimate(text))


def message_text(content: Any) -> str:
    """Text of a message ``content``: a string or a list of ``text`` parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text", "") for p in content if isinstance(p, dict)]
        return "\n".join(p for p in parts if isinstance(p, str))
    return ""


@lru_cache(maxsize=512)
def parse_labels(content: str) -> tuple[tuple[str, ...], str]:
    """Find a ``Labels:`` block; return (labels, content without the block)."""
    if "abels:" not in content:  # cheap pre-check for the common case
        return (), content
    lines = content.splitlines()
    for start, line in enumerate(lines):
        if line.strip().lower() != "labels:":
            continue
        labels: list[str] = []
        end = start + 1
        while end < len(lines):
            item = lines[end].strip()
            if not item.startswith("- "):
                break
            label = item[2:].strip()
            if label:
                labels.append(label)
            end += 1
        if labels:
            rest = "\n".join(lines[:start] + lines[end:])
            return tuple(labels), rest
    return (), content


def _stable_index(text: str, n: int) -> int:
    """Index in ``range(n)`` from a hash that is stable across processes."""
    digest = hashlib.blake2b(text.encode("utf-8", "replace"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % n


@lru_cache(maxsize=4096)
def _label_words(label: str) -> frozenset[str]:
    return frozenset(w for w in _LABEL_SPLIT.split(label.lower()) if len(w) >= _MIN_WORD)


def answer_text(text: str, labels: tuple[str, ...] = (), key: str | None = None) -> str:
    """Answer for one text: the best label, or a short phrase from the text.

    ``key`` (default ``text``) seeds the tie-break hash; callers pass the
    raw text when ``text`` had a label block stripped from it.
    """
    if labels:
        words = {w for w in _WORD.findall(text.lower()) if len(w) >= _MIN_WORD}
        scores = [len(words & _label_words(label)) for label in labels]
        best = max(scores)
        tied = [label for label, s in zip(labels, scores, strict=True) if s == best]
        if len(tied) == 1:
            return tied[0]
        return tied[_stable_index(text if key is None else key, len(tied))]
    return _phrase(text)


def _phrase(text: str) -> str:
    """Up to two longest Latin words (in text order), else 2-4 CJK chars."""
    seen: dict[str, int] = {}  # word -> first position
    for pos, word in enumerate(_LATIN_WORD.findall(text)):
        seen.setdefault(word.lower(), pos)
    if seen:
        # Longest first, earlier first on ties; then restore text order.
        top = sorted(seen, key=lambda w: (-len(w), seen[w]))[:2]
        return " ".join(sorted(top, key=seen.__getitem__))
    cjk = _CJK.findall(text)
    if cjk:
        return "".join(cjk[:4])
    return "misc"


# --- response_format handling ------------------------------------------------


def _schema(response_format: Any) -> dict[str, Any] | None:
    """The JSON schema carried by ``response_format``, if any."""
    if not isinstance(response_format, dict):
        return None
    kind = response_format.get("type")
    if kind == "json_schema":
        inner = response_format.get("json_schema")
        schema = inner.get("schema") if isinstance(inner, dict) else None
    elif kind == "json_object":
        schema = response_format.get("schema")
    else:
        return None
    return schema if isinstance(schema, dict) else None


def _first_enum(node: Any) -> tuple[str, ...]:
    """Depth-first search for the first ``enum`` list in a schema."""
    if isinstance(node, dict):
        enum = node.get("enum")
        if isinstance(enum, list) and enum:
            return tuple(str(v) for v in enum)
        children: Any = node.values()
    elif isinstance(node, list):
        children = node
    else:
        return ()
    for child in children:
        found = _first_enum(child)
        if found:
            return found
    return ()


def _wrap_key(schema: dict[str, Any] | None, packed: bool) -> str | None:
    """Property name to wrap the answer in, from an object schema.

    Unpacked: the property holding the enum, else the first one.  Packed:
    only a single object-typed property (e.g. ``{"results": {...}}``).
    """
    if schema is None:
        return None
    props = schema.get("properties")
    if not isinstance(props, dict) or not props:
        return None
    if packed:
        if len(props) != 1:
            return None
        ((name, sub),) = props.items()
        is_obj = isinstance(sub, dict) and sub.get("type") == "object"
        return str(name) if is_obj else None
    for name, sub in props.items():
        if _first_enum(sub):
            return str(name)
    return str(next(iter(props)))


# --- whole requests -----------------------------------------------------------


def _packed_items(text: str) -> list[tuple[str, str]] | None:
    """``[(id, text), ...]`` if ``text`` is a JSON list of {id, text} objects."""
    if not text.lstrip().startswith("["):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, list) or not data:
        return None
    items: list[tuple[str, str]] = []
    for obj in data:
        if not isinstance(obj, dict) or "id" not in obj:
            return None
        item_text = obj.get("text")
        if not isinstance(item_text, str):
            return None
        items.append((str(obj["id"]), item_text))
    return items


def answer_messages(
    messages: list[dict[str, Any]], response_format: Any = None
) -> tuple[str, list[str]]:
    """Answer a chat request; return (message content, texts answered).

    ``texts`` is what the stats count: the last user message, or each item
    of a packed request.
    """
    last_user = ""
    labels: tuple[str, ...] = ()
    for msg in messages:
        role = msg.get("role")
        if role not in ("system", "user", "developer"):
            continue
        content = message_text(msg.get("content"))
        if role == "user":
            last_user = content
        if not labels:
            labels = parse_labels(content)[0]

    schema = _schema(response_format)
    enum = _first_enum(schema)
    if enum:
        labels = enum
    json_mode = isinstance(response_format, dict) and response_format.get("type") in (
        "json_object",
        "json_schema",
    )

    items = _packed_items(last_user)
    if items is not None:
        mapping = {item_id: answer_text(t, labels) for item_id, t in items}
        key = _wrap_key(schema, packed=True)
        payload: Any = {key: mapping} if key else mapping
        return json.dumps(payload, ensure_ascii=False), [t for _, t in items]

    # Score without the label block itself, else every label would match.
    stripped = parse_labels(last_user)[1] if labels else last_user
    answer = answer_text(stripped, labels, key=last_user)
    if not json_mode:
        return answer, [last_user]
    # json_object without a schema -> {"label": ...}; a schema without
    # properties (e.g. a bare enum) -> a JSON string.
    key = "label" if schema is None else _wrap_key(schema, packed=False)
    content = json.dumps({key: answer} if key else answer, ensure_ascii=False)
    return content, [last_user]
