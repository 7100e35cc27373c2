"""Deterministic answers for the simulator.

Same request, same answer, whatever the timing: the answer depends only on
the text of the last user message, the labels offered (a ``Labels:`` block
in a system/user message, or the first ``enum`` of a JSON schema in
``response_format``) and the schema shape. Requests for several fields (an
object schema, or a ``Fields:`` block in the prompt) are answered field by
field in ``extract.py``.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from ..protocol.prompts import DEFINED_LABELS, MULTI_LABEL
from .extract import SimField, answer_fields, fields_of_schema, parse_fields
from .words import answer_text

__all__ = [
    "answer_messages",
    "answer_text",
    "message_text",
    "parse_labels",
]


def message_text(content: Any) -> str:
    """Text of a message ``content``: a string or a list of ``text`` parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text", "") for p in content if isinstance(p, dict)]
        return "\n".join(p for p in parts if isinstance(p, str))
    return ""


def parse_labels(content: str) -> tuple[tuple[str, ...], str]:
    """Find a ``Labels:`` block (or ``Labels (label: meaning):`` with ``- label: meaning``
    lines); return (labels, content without the block)."""
    labels, _, rest = _label_block(content)
    return labels, rest


def label_meanings(content: str) -> dict[str, str]:
    """The meanings given in a ``Labels (label: meaning):`` block, by label."""
    labels, meanings, _ = _label_block(content)
    return {label: m for label, m in zip(labels, meanings, strict=True) if m}


@lru_cache(maxsize=512)
def _label_block(content: str) -> tuple[tuple[str, ...], tuple[str, ...], str]:
    if "abels" not in content:  # cheap pre-check for the common case
        return (), (), content
    lines = content.splitlines()
    for start, line in enumerate(lines):
        header = line.strip().lower()
        if header not in ("labels:", DEFINED_LABELS.lower()):
            continue
        labels: list[str] = []
        meanings: list[str] = []
        end = start + 1
        while end < len(lines):
            item = lines[end].strip()
            if not item.startswith("- "):
                break
            label, meaning = item[2:].strip(), ""
            if header != "labels:":
                label, _, meaning = label.partition(": ")
            if label.strip():
                labels.append(label.strip())
                meanings.append(meaning.strip())
            end += 1
        if labels:
            rest = "\n".join(lines[:start] + lines[end:])
            return tuple(labels), tuple(meanings), rest
    return (), (), content


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


def _wrap_key(schema: dict[str, Any] | None, packed: bool,
              ids: list[str] | None = None) -> str | None:
    """Property name to wrap the answer in, from an object schema.

    Unpacked: the property holding the enum, else the first one.  Packed:
    only a single object-typed property that is not an item id (e.g.
    ``{"results": {...}}``).
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
        return str(name) if is_obj and name not in (ids or ()) else None
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


def _row_schema(schema: dict[str, Any] | None, ids: list[str] | None) -> Any:
    """The schema of one row's answer: the schema itself, or a pack's first item's."""
    if schema is None or ids is None:
        return schema
    props = schema.get("properties")
    if not isinstance(props, dict) or not props:
        return None
    if len(props) == 1 and next(iter(props)) not in ids:  # {"results": {...}}
        inner = next(iter(props.values()))
        props = inner.get("properties") if isinstance(inner, dict) else None
        if not isinstance(props, dict) or not props:
            return None
    return next(iter(props.values()))


def answer_messages(
    messages: list[dict[str, Any]], response_format: Any = None, *, bad_fields: float = 0.0,
    seed: int = 0,
) -> tuple[str, list[str]]:
    """Answer a chat request; return (message content, texts answered).

    ``texts`` is what the stats count: the last user message, or each item
    of a packed request. A request for fields (``simulator/extract.py``) gets one JSON
    object per text, ``bad_fields`` of its fields wrong (seeded by ``seed``).
    """
    last_user = ""
    labels: tuple[str, ...] = ()
    fields: list[SimField] = []
    multi = False
    meanings: dict[str, str] = {}
    for msg in messages:
        role = msg.get("role")
        if role not in ("system", "user", "developer"):
            continue
        content = message_text(msg.get("content"))
        if role == "user":
            last_user = content
        if not labels:
            labels = parse_labels(content)[0]
            meanings = label_meanings(content)
        if not fields:
            fields = parse_fields(content)
        multi = multi or MULTI_LABEL in content

    schema = _schema(response_format)
    enum = _first_enum(schema)
    if enum:
        labels = enum
    json_mode = isinstance(response_format, dict) and response_format.get("type") in (
        "json_object",
        "json_schema",
    )

    items = _packed_items(last_user)
    ids = None if items is None else [item_id for item_id, _ in items]
    fields = fields_of_schema(_row_schema(schema, ids)) or fields
    bare = multi and bool(labels) and not fields  # multi-label: a list, not an object
    if bare:
        fields = [SimField("labels", "list", labels)]

    def one(text: str) -> Any:
        if fields:
            answer = answer_fields(text, fields, bad=bad_fields, seed=seed)
            return answer.get("labels") if bare and ids is not None else answer
        return answer_text(text, labels, meanings=meanings)

    if items is not None:
        mapping = {item_id: one(t) for item_id, t in items}
        key = _wrap_key(schema, packed=True, ids=ids)
        payload: Any = {key: mapping} if key else mapping
        return json.dumps(payload, ensure_ascii=False), [t for _, t in items]
    if fields:
        answer = one(last_user)
        if bare and not json_mode:  # instructions alone: the bare JSON list
            answer = answer.get("labels")
        return json.dumps(answer, ensure_ascii=False), [last_user]

    # Score without the label block itself, else every label would match.
    stripped = parse_labels(last_user)[1] if labels else last_user
    answer = answer_text(stripped, labels, key=last_user, meanings=meanings)
    if not json_mode:
        return answer, [last_user]
    # json_object without a schema -> {"label": ...}; a schema without
    # properties (e.g. a bare enum) -> a JSON string.
    key = "label" if schema is None else _wrap_key(schema, packed=False)
    content = json.dumps({key: answer} if key else answer, ensure_ascii=False)
    return content, [last_user]
