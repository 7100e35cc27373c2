"""The fields of an `extract` schema, in one internal form whatever the user passed.

Accepted schemas, all converted to a tuple of `Field`:

- a dict `{name: spec}` where a spec is `str`, `int`, `float`, `bool`, a list of labels
  (`["USD", "EUR"]`), `Literal["USD", "EUR"]`, or `list[Literal[...]]` (a list of
  labels per row); `T | None` (or `Optional[T]`, or `None` in a label list) makes a
  field optional; `Annotated[T, "description"]` adds a description;
- a Pydantic model class (duck-typed on `model_fields`: pydantic is not a dependency),
  its annotations read as above and `Field(description=...)` as the description;
- a JSON Schema object (`{"type": "object", "properties": {...}, "required": [...]}`):
  `type` string / integer / number / boolean, `enum` of strings, `array` of an `enum`;
  a field is optional when it is not `required`, or its type allows `null`.

The same form goes out: `row_schema` (JSON Schema for structured output) and
`field_line` (one line of the prompt's `Fields:` block, a contract the simulator parses:
`- name (type): description`, type `string`, `integer`, `number`, `boolean`,
`one of [<JSON list>]` or `list of [<JSON list>]`, followed by ` or null` when optional).
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import ConfigError
from ..protocol.prompts import check_labels

Kind = Literal["str", "int", "float", "bool", "label", "labels"]
_PY = {str: "str", int: "int", float: "float", bool: "bool"}
_JSON = {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}
_FROM_JSON = {v: k for k, v in _JSON.items()}
SPECS = ("str, int, float, bool, a list of labels, Literal['a', 'b'] or "
         "list[Literal['a', 'b']], each optionally `| None`")


@dataclass(frozen=True)
class Field:
    """One field: its name, kind, labels (label kinds), whether null is allowed, and the
    description sent to the model."""

    name: str
    kind: Kind
    labels: tuple[str, ...] = ()
    nullable: bool = False
    description: str = ""


def fields_from(schema: object) -> tuple[Field, ...]:
    """The fields of a dict of types, a Pydantic model class or a JSON Schema object."""
    model_fields = getattr(schema, "model_fields", None)
    if isinstance(schema, type) and isinstance(model_fields, Mapping):
        fields = [_from_type(name, info.annotation, getattr(info, "description", None) or "")
                  for name, info in model_fields.items()]
    elif isinstance(schema, Mapping) and isinstance(schema.get("properties"), Mapping):
        fields = _from_json_schema(schema)
    elif isinstance(schema, Mapping):
        fields = [_from_type(name, spec, "") for name, spec in schema.items()]
    else:
        raise ConfigError(
            f"schema must be a dict of field types (e.g. {{'amount': float, 'currency': "
            f"['USD', 'EUR']}}), a Pydantic model class or a JSON Schema object; got "
            f"{type(schema).__name__}")
    if not fields:
        raise ConfigError("schema has no fields: give at least one, e.g. {'amount': float}")
    for field in fields:
        name = field.name
        if not isinstance(name, str) or not name.strip() or name != name.strip() or (
                len(name.splitlines()) > 1):
            raise ConfigError(f"field name {name!r} must be a non-empty one-line string "
                              "without surrounding spaces")
    return tuple(fields)


def _unwrap(spec: Any) -> tuple[Any, bool, str]:
    """`spec` without `| None` and `Annotated[...]`: (type, nullable, description)."""
    nullable, description = False, ""
    while True:
        origin = typing.get_origin(spec)
        if origin is typing.Annotated:
            spec, *meta = typing.get_args(spec)
            description = description or next((m for m in meta if isinstance(m, str)), "")
        elif origin is typing.Union or isinstance(spec, types.UnionType):
            args = typing.get_args(spec)
            rest = [a for a in args if a is not type(None)]
            if len(rest) != 1:
                return spec, nullable, description  # a real union: refused by the caller
            nullable = nullable or len(rest) < len(args)
            spec = rest[0]
        else:
            return spec, nullable, description


def _from_type(name: Any, spec: Any, description: str) -> Field:
    base, nullable, note = _unwrap(spec)
    description = " ".join((description or note).split())
    if isinstance(base, type) and base in _PY:
        return Field(name, _PY[base], (), nullable, description)  # type: ignore[arg-type]
    if typing.get_origin(base) is Literal:
        return Field(name, "label", _labels(name, typing.get_args(base)), nullable, description)
    if typing.get_origin(base) is list:
        (item,) = typing.get_args(base) or (None,)
        item, _, _ = _unwrap(item)
        if typing.get_origin(item) is Literal:
            labels = _labels(name, typing.get_args(item))
            return Field(name, "labels", labels, nullable, description)
    if isinstance(base, (list, tuple)) and base:
        nullable = nullable or any(v is None for v in base)
        labels = _labels(name, [v for v in base if v is not None])
        return Field(name, "label", labels, nullable, description)
    raise ConfigError(f"field {name!r}: {spec!r} is not a field type; use {SPECS}")


def _labels(name: Any, values: Any) -> tuple[str, ...]:
    values = list(values)
    if not all(isinstance(v, str) for v in values):
        raise ConfigError(f"field {name!r}: labels must be strings, got {values!r}")
    try:
        labels = check_labels(values)
    except ConfigError as error:
        raise ConfigError(f"field {name!r}: {error}") from None
    assert labels is not None
    return labels


def _from_json_schema(schema: Mapping[str, Any]) -> list[Field]:
    defs = {**schema.get("definitions", {}), **schema.get("$defs", {})}
    required = set(schema.get("required", ()))
    return [_from_json(name, _resolve(prop, defs), name in required, defs)
            for name, prop in schema["properties"].items()]


def _resolve(node: Any, defs: Mapping[str, Any]) -> Any:
    """A `{"$ref": "#/$defs/X"}` node replaced by its definition (one level)."""
    if isinstance(node, Mapping) and isinstance(node.get("$ref"), str):
        target = defs.get(node["$ref"].rsplit("/", 1)[-1])
        if isinstance(target, Mapping):
            return {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _enum(node: Mapping[str, Any]) -> list[Any] | None:
    """The values of an `enum` (or a `const`: one value) in a JSON Schema node."""
    if isinstance(node.get("enum"), list):
        return list(node["enum"])
    return [node["const"]] if "const" in node else None


def _from_json(name: str, prop: Any, required: bool, defs: Mapping[str, Any]) -> Field:
    if not isinstance(prop, Mapping):
        raise ConfigError(f"field {name!r}: a JSON Schema property must be an object")
    description = " ".join(str(prop.get("description") or "").split())
    nullable = not required
    options = prop.get("anyOf", prop.get("oneOf"))
    if isinstance(options, list):
        rest = [_resolve(o, defs) for o in options if o != {"type": "null"}]
        nullable = nullable or len(rest) < len(options)
        if len(rest) != 1 or not isinstance(rest[0], Mapping):
            raise ConfigError(f"field {name!r}: a union of types cannot be extracted; use one")
        description = description or " ".join(str(rest[0].get("description") or "").split())
        prop = {**rest[0]}
    enum = _enum(prop)
    kind = prop.get("type", "string" if enum is not None else None)
    if isinstance(kind, list):
        nullable = nullable or "null" in kind
        kinds = [k for k in kind if k != "null"]
        kind = kinds[0] if len(kinds) == 1 else None
    if enum is not None:
        values = list(enum)
        nullable = nullable or None in values
        labels = _labels(name, [v for v in values if v is not None])
        return Field(name, "label", labels, nullable, description)
    if kind in _FROM_JSON:
        return Field(name, _FROM_JSON[kind], (), nullable, description)  # type: ignore[arg-type]
    items = _resolve(prop.get("items"), defs)
    if kind == "array" and isinstance(items, Mapping) and _enum(items) is not None:
        return Field(name, "labels", _labels(name, _enum(items)), nullable, description)
    raise ConfigError(
        f"field {name!r}: JSON Schema {dict(prop)!r} is not a field type; use type string, "
        "integer, number or boolean, an enum of strings, or an array of an enum")


def value_schema(field: Field) -> dict[str, Any]:
    """The JSON Schema of one field's value, as sent for structured output."""
    out: dict[str, Any]
    if field.kind == "labels":
        out = {"type": "array", "items": {"type": "string", "enum": list(field.labels)}}
        kind = "array"
    elif field.kind == "label":
        kind = "string"
        out = {"type": kind, "enum": [*field.labels, *([None] if field.nullable else [])]}
    else:
        kind = _JSON[field.kind]
        out = {"type": kind}
    if field.nullable:
        out["type"] = [kind, "null"]
    if field.description:
        out["description"] = field.description
    return out


def row_schema(fields: tuple[Field, ...]) -> dict[str, Any]:
    """One row's answer: an object with every field (optional ones may be null)."""
    return {
        "type": "object",
        "properties": {f.name: value_schema(f) for f in fields},
        "required": [f.name for f in fields],
        "additionalProperties": False,
    }


def type_text(field: Field) -> str:
    """A field's type as the prompt's `Fields:` block writes it."""
    if field.kind in ("label", "labels"):
        word = "one of" if field.kind == "label" else "list of"
        text = f"{word} {json.dumps(list(field.labels), ensure_ascii=False)}"
    else:
        text = _JSON[field.kind]
    return f"{text} or null" if field.nullable else text


def field_line(field: Field) -> str:
    """`- name (type): description` (no description: no colon)."""
    line = f"- {field.name} ({type_text(field)})"
    return f"{line}: {field.description}" if field.description else line
