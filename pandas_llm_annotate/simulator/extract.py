"""Deterministic answers to field requests (`extract`), for the simulator.

The fields come from the answer's JSON schema (an object with several properties, or
one that is not a plain string) or, without one, from a ``Fields:`` block in the
prompt (``- name (type): description``; see ``tasks/fields.py``). Each value depends
only on the text and the field:

- string: up to two longest words of the text (like a free-text answer);
- integer / number: the first number in the text, else null (optional) or 0;
- boolean: whether a word of the field's name (3+ letters) is in the text;
- one of labels: the best label (as for ``annotate``);
- list of labels: every label sharing a word with the text, in label order.

``bad`` (the ``bad_fields`` option) is the share of fields answered wrong, seeded per
(seed, text, field): half of them are left out, half get a value of a wrong type.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from .words import answer_text, label_words, phrase, text_words

_FIELD = re.compile(r"- (?P<name>.+?) \((?P<type>string|integer|number|boolean|one of |list of )")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_KINDS = {"string": "string", "integer": "integer", "number": "number", "boolean": "boolean",
          "one of ": "enum", "list of ": "list"}
_WRONG = {"string": ["not", "a", "string"], "integer": "many", "number": "lots",
          "boolean": "maybe", "enum": "none of these", "list": "nope"}


@dataclass(frozen=True)
class SimField:
    name: str
    kind: str  # string, integer, number, boolean, enum, list
    labels: tuple[str, ...] = ()
    nullable: bool = False


def parse_fields(content: str) -> list[SimField]:
    """The fields of a ``Fields:`` block (empty when there is none)."""
    if "Fields:" not in content:
        return []
    lines = content.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == "Fields:"), None)
    if start is None:
        return []
    found: list[SimField] = []
    for line in lines[start + 1 :]:
        match = _FIELD.match(line.strip())
        if match is None:
            break
        kind, rest = _KINDS[match["type"]], line.strip()[match.end() :]
        labels: tuple[str, ...] = ()
        if kind in ("enum", "list"):
            try:
                values, end = json.JSONDecoder().raw_decode(rest)
            except ValueError:
                break
            labels, rest = tuple(str(v) for v in values), rest[end:]
        found.append(SimField(match["name"], kind, labels, rest.startswith(" or null")))
    return found


def _types(node: dict[str, Any]) -> tuple[str | None, bool]:
    kind = node.get("type")
    if isinstance(kind, list):
        rest = [k for k in kind if k != "null"]
        return (rest[0] if rest else None), "null" in kind
    return (kind if isinstance(kind, str) else None), False


def fields_of_schema(row: Any) -> list[SimField]:
    """The fields of a row's object schema; empty for a one-string answer (a label or a
    free text: answered the old way) or anything else."""
    props = row.get("properties") if isinstance(row, dict) else None
    if not isinstance(props, dict) or not props:
        return []
    found: list[SimField] = []
    for name, node in props.items():
        if not isinstance(node, dict):
            return []
        kind, nullable = _types(node)
        enum, items = node.get("enum"), node.get("items")
        if isinstance(enum, list):
            labels = tuple(str(v) for v in enum if v is not None)
            found.append(SimField(str(name), "enum", labels, nullable or None in enum))
        elif kind == "array" and isinstance(items, dict) and isinstance(items.get("enum"), list):
            found.append(SimField(str(name), "list", tuple(str(v) for v in items["enum"]),
                                  nullable))
        elif kind in ("string", "integer", "number", "boolean"):
            found.append(SimField(str(name), kind, (), nullable))
        else:
            return []
    if len(found) == 1 and found[0].kind in ("string", "enum"):
        return []
    return found


def _roll(seed: int, text: str, name: str) -> tuple[float, bool]:
    digest = hashlib.blake2b(f"{seed}\0{name}\0{text}".encode("utf-8", "replace"),
                             digest_size=8).digest()
    value = int.from_bytes(digest, "big")
    return (value >> 1) / 2**63, bool(value & 1)


def _number(text: str, integer: bool) -> float | int | None:
    match = _NUMBER.search(text)
    if match is None:
        return None
    return int(float(match.group(0))) if integer else float(match.group(0))


def answer_fields(text: str, fields: list[SimField], *, bad: float = 0.0,
                  seed: int = 0) -> dict[str, Any]:
    """One row's answer object (see the module doc)."""
    words = text_words(text)
    out: dict[str, Any] = {}
    for field in fields:
        value: Any
        if field.kind == "string":
            value = phrase(text)
        elif field.kind in ("integer", "number"):
            value = _number(text, field.kind == "integer")
            if value is None and not field.nullable:
                value = 0 if field.kind == "integer" else 0.0
        elif field.kind == "boolean":
            value = bool(words & text_words(field.name))
        elif field.kind == "enum":
            value = answer_text(text, field.labels)
        else:
            value = [label for label in field.labels if words & label_words(label)]
        if bad:
            roll, drop = _roll(seed, text, field.name)
            if roll < bad:
                if drop:
                    continue
                value = _WRONG[field.kind]
        out[field.name] = value
    return out
