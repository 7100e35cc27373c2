"""The schema task (`extract`): typed fields per row, one JSON object per answer.

The system prompt is the user's prompt (or `DEFAULT_EXTRACT`), the reply instruction,
then the `Fields:` block (`fields.field_line`, a contract the simulator parses). The
answer schema is the object of every field (`fields.row_schema`); a pack's is an object
keyed by id whose values are those objects. Each field is checked on its own
(`values.check_value`): a wrong one is null in the answer and listed as a problem, the
others are kept. The canonical answer (what the cache keeps) is the JSON object of
every field in schema order.
"""

from __future__ import annotations

import json
import re
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from ..protocol.structured import pack_schema
from ..text import estimate_tokens
from .base import FieldProblem, Verdict
from .examples import example_pairs, examples_block, with_examples
from .fields import Field, field_line, fields_from, row_schema
from .output import broadcast_frame
from .values import check_value, dtype, merge_values, raw_text

DEFAULT_EXTRACT = "Extract the fields below from the text."
REPLY = ("Reply with one JSON object only, with exactly the keys listed below; give null for "
         "a field marked \"or null\" when the text does not say.")
_FENCE = re.compile(r"```[\w-]*\s*(.*?)\s*```", re.S)
_VALUE_TOKENS = {"str": 48, "int": 12, "float": 12, "bool": 3}
MAX_LIST_LABELS = 8  # a list-of-labels field gets room for this many labels


def extract_prompt(prompt: str | None, fields: Sequence[Field]) -> str:
    task = prompt.strip() if prompt is not None else ""
    block = "\n".join(field_line(f) for f in fields)
    return f"{task or DEFAULT_EXTRACT}\n\n{REPLY}\n\nFields:\n{block}"


def field_tokens(field: Field) -> int:
    """Answer tokens one field's key and value may take."""
    if field.kind in ("label", "labels"):
        longest = max(estimate_tokens(label) for label in field.labels) + 2
        value = longest if field.kind == "label" else min(
            MAX_LIST_LABELS, len(field.labels)) * longest + 2
    else:
        value = _VALUE_TOKENS[field.kind]
    return estimate_tokens(field.name) + 3 + value


def parse_object(raw: str) -> dict[str, Any] | None:
    """The JSON object in a raw answer (code fences and text around it allowed), its
    numbers exact (`Decimal`); None when there is none."""
    text = raw.strip()
    if fence := _FENCE.search(text):
        text = fence.group(1)
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        return None
    try:
        data = json.loads(text[start : end + 1], parse_float=Decimal)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


@dataclass(frozen=True)
class SchemaTask:
    """Typed fields from each text. Build it with `SchemaTask.build`."""

    fields: tuple[Field, ...]
    system: str
    max_tokens: int
    pack_answer: str = "{...}"

    @classmethod
    def build(cls, schema: object, prompt: str | None, max_tokens: int | None, *,
              examples: Any = None, column: Hashable | None = None) -> SchemaTask:
        """Read the schema and the examples (a `ConfigError` says what to pass) and
        build the prompt."""
        fields = fields_from(schema)
        room = sum(field_tokens(f) for f in fields) + 8
        task = cls(fields, extract_prompt(prompt, fields), max_tokens or room)
        names = tuple(f.name for f in fields)
        block = examples_block(example_pairs(examples, column, names), task.render)
        return replace(task, system=with_examples(task.system, block))

    def render(self, answer: Any) -> str:
        """An example's answer (a dict of field values, or a Pydantic model instance) as
        the model should write it; ValueError when a field is wrong or unknown."""
        if hasattr(answer, "model_dump"):
            answer = answer.model_dump()
        if not isinstance(answer, Mapping):
            raise ValueError("the answer must be a dict of field values")
        if extra := [k for k in answer if k not in self.field_names]:
            raise ValueError(f"{extra} are not fields (the fields: {list(self.field_names)})")
        verdict = self.verdict(answer)
        if verdict.problems:
            raise ValueError("; ".join(f"field {p.field!r}: {p.reason}" for p in verdict.problems))
        assert verdict.answer is not None
        return verdict.answer

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def key_parts(self) -> dict[str, Any]:
        return {"fields": [[f.name, f.kind, list(f.labels), f.nullable] for f in self.fields]}

    def check(self, raw: str) -> Verdict:
        data = parse_object(raw)
        if data is None:
            return Verdict(None, "answer is not a JSON object")
        if len(data) == 1 and not set(data) & set(self.field_names):
            inner = next(iter(data.values()))
            if isinstance(inner, dict):  # {"result": {...}} wrappers
                data = inner
        return self.verdict(data)

    def verdict(self, data: Mapping[str, Any]) -> Verdict:
        """Each field of an answer object checked: the canonical answer and its problems."""
        values: dict[str, Any] = {}
        problems: list[FieldProblem] = []
        for f in self.fields:
            present = f.name in data
            value, reason = check_value(f, present, data.get(f.name))
            values[f.name] = value
            if reason is not None:
                raw = raw_text(data[f.name]) if present else None
                problems.append(FieldProblem(f.name, raw, reason))
        return Verdict(self.encode(values), problems=tuple(problems))

    @staticmethod
    def encode(values: Mapping[str, Any]) -> str:
        return json.dumps(values, ensure_ascii=False, separators=(",", ":"))

    def merge(self, parts: Sequence[str]) -> str:
        """One text's answer from its chunks' answers, field by field (`values.py`)."""
        if len(parts) == 1:
            return parts[0]
        rows = [json.loads(p) for p in parts]
        return self.encode({f.name: merge_values(f, [r.get(f.name) for r in rows])
                            for f in self.fields})

    def row_answer_tokens(self) -> int:
        return self.max_tokens

    def expected_answer_tokens(self) -> float:
        return self.max_tokens

    def schema(self, rows: int | None) -> dict[str, Any] | None:
        one = row_schema(self.fields)
        return one if rows is None else pack_schema(rows, one)

    def present(self, answer: str) -> frozenset[str]:
        return frozenset(k for k, v in json.loads(answer).items() if v is not None)

    def output(self, answers: Sequence[str | None], take: np.ndarray,
               like: pd.Series) -> pd.DataFrame:
        rows = [None if a is None else json.loads(a) for a in answers]
        columns = {f.name: ([None if r is None else r.get(f.name) for r in rows], dtype(f))
                   for f in self.fields}
        return broadcast_frame(columns, take, like)
