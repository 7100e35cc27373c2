"""Per-field validation, the merge of chunk answers, and the result's dtypes.

Validation keeps a value only when it is what the field asks for, or converts to it
without loss; nothing else is guessed:

- integer: a JSON integer; a float with no fraction (`12.0` → 12); a string of one
  (`"12"`, `" -3 "`, `"12.0"` → 12). `12.5`, `"twelve"`, `true` are wrong.
- number: a JSON number; a numeric string (`"12.5"`, `"1e3"`). Not NaN or infinity.
- boolean: `true`/`false`; the strings `"true"`/`"false"` (any case).
- string: a string (surrounding spaces stripped); a JSON number becomes its text
  (`12` → `"12"`). An empty string counts as null.
- label: normalised like `annotate`'s labels (case, spaces/`_`/`-`, quotes, trailing
  punctuation); anything that is still not a label is wrong.
- list of labels: a JSON list of labels (each normalised as above, duplicates dropped,
  in the order of the labels); a single label string counts as a one-item list; `[]`
  is a valid answer (none apply).
- null, or a missing key: fine for an optional field; wrong for the others.

Merge of a chunked text's answers, per field (null answers skipped): a label votes
(ties go to the earliest chunk); numbers take the first value; a boolean is true when
any chunk says true; a string takes the first non-empty one; a list of labels is the
union, in the order of the labels.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import pandas as pd

from ..protocol.matching import normalize_answer
from .fields import Field

_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")  # ASCII digits
_INT64 = 2**63
_MAX_STR = 64  # longest numeric string read


def check_value(field: Field, present: bool, value: Any) -> tuple[Any, str | None]:
    """`(value, None)`, the value in its canonical Python form (None for null), or
    `(None, reason)` when the answer is wrong for the field. JSON numbers come as
    `int` or `Decimal` (`json.loads(..., parse_float=Decimal)`: exact), or `float`."""
    if not present or value is None or (field.kind == "str" and _blank(value)):
        if field.nullable:
            return None, None
        return None, "missing" if not present else "null, but the field is not optional"
    kind = field.kind
    if kind == "str":
        if isinstance(value, str):
            return value.strip(), None
        if _number(value):
            return str(value), None
        return None, f"expected a string, got {_json_type(value)}"
    if kind == "int":
        return _int(value)
    if kind == "float":
        return _float(value)
    if kind == "bool":
        if isinstance(value, bool):
            return value, None
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true", None
        return None, f"expected true or false, got {_json_type(value)}"
    if kind == "label":
        label = normalize_answer(value, field.labels) if isinstance(value, str) else None
        return (label, None) if label is not None else (None, "not one of the labels")
    return _labels(field, value)


def _blank(value: Any) -> bool:
    return isinstance(value, str) and not value.strip()


def _number(value: Any) -> bool:
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)


def raw_text(value: Any) -> str:
    """A value as JSON text, for the failures table (at most 200 characters)."""
    return json.dumps(value, ensure_ascii=False, default=str)[:200]


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if _number(value):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"


def _exact(value: Any) -> Decimal | None:
    """A number or a numeric string as an exact Decimal; None when it is neither."""
    if _number(value):
        return Decimal(value)  # exact for int, float and Decimal
    if isinstance(value, str):
        text = value.strip()
        if len(text) <= _MAX_STR and _NUMBER.fullmatch(text):
            try:
                return Decimal(text)
            except InvalidOperation:  # pragma: no cover - the pattern is a Decimal's
                return None
    return None


def _int(value: Any) -> tuple[int | None, str | None]:
    if not (_number(value) or isinstance(value, str)):
        return None, f"expected a whole number, got {_json_type(value)}"
    exact = _exact(value)
    if exact is None:
        return None, "not a number"
    if not exact.is_finite() or exact != exact.to_integral_value():
        return None, "not a whole number"
    if exact.adjusted() > 18:  # more than 19 digits: never an int64 (and never built)
        return None, "out of the 64-bit integer range"
    whole = int(exact)
    if not -_INT64 <= whole < _INT64:
        return None, "out of the 64-bit integer range"
    return whole, None


def _float(value: Any) -> tuple[float | None, str | None]:
    if not (_number(value) or isinstance(value, str)):
        return None, f"expected a number, got {_json_type(value)}"
    exact = _exact(value)
    if exact is None:
        return None, "not a number"
    number = float(exact)
    if not math.isfinite(number):
        return None, "not a finite number"
    return number, None


def _labels(field: Field, value: Any) -> tuple[list[str] | None, str | None]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        return None, f"expected a list of labels, got {_json_type(value)}"
    found: set[str] = set()
    for item in items:
        label = normalize_answer(item, field.labels) if isinstance(item, str) else None
        if label is None:
            return None, f"{json.dumps(item, ensure_ascii=False)[:60]} is not one of the labels"
        found.add(label)
    return [label for label in field.labels if label in found], None


def merge_values(field: Field, values: Sequence[Any]) -> Any:
    """One value from the chunks' values of `field` (see the module doc)."""
    given = [v for v in values if v is not None]
    if not given:
        return None
    if field.kind == "label":
        counts = Counter(given)
        top = max(counts.values())
        return next(v for v in given if counts[v] == top)
    if field.kind == "bool":
        return any(given)
    if field.kind == "labels":
        found = {label for v in given for label in v}
        return [label for label in field.labels if label in found]
    if field.kind == "str":
        return next((v for v in given if v), given[0])
    return given[0]


def dtype(field: Field) -> Any:
    """The pandas dtype of a field's column: nullable, `category` for a label."""
    if field.kind == "label":
        return pd.CategoricalDtype(list(field.labels))
    return {"str": "string", "int": "Int64", "float": "Float64", "bool": "boolean",
            "labels": object}[field.kind]
