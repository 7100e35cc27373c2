"""Property tests: a schema given as a dict of types, a Pydantic model or a JSON Schema
becomes one internal field list; per-field validation keeps only lossless conversions."""

from __future__ import annotations

import json
import typing
from decimal import Decimal
from typing import Annotated, Any, Literal, Optional

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pandas_llm_annotate.tasks.fields import Field, fields_from, row_schema
from pandas_llm_annotate.tasks.schema import SchemaTask
from pandas_llm_annotate.tasks.values import check_value

KINDS = ("str", "int", "float", "bool", "label", "labels")
PY = {"str": str, "int": int, "float": float, "bool": bool}
JSON_TYPES = {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}
WORDS = ["alpha", "beta", "gamma", "delta", "card lost", "refund", "USD", "EUR", "中文"]


@st.composite
def fields(draw: st.DrawFn) -> list[Field]:
    n = draw(st.integers(1, 6))
    out = []
    for i in range(n):
        kind = draw(st.sampled_from(KINDS))
        chosen = draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=5, unique=True))
        # in one order: typing caches `Literal[...] | None` by equality, which ignores order
        labels = tuple(w for w in WORDS if w in chosen) if kind in ("label", "labels") else ()
        words = draw(st.lists(st.sampled_from([*WORDS, "the", "amount"]), max_size=4))
        out.append(Field(f"f{i}_{draw(st.sampled_from(['x', 'amount', 'tag']))}", kind,
                         labels, draw(st.booleans()), " ".join(words)))
    return out


def _annotation(f: Field) -> Any:
    if f.kind in PY:
        base: Any = PY[f.kind]
    elif f.kind == "label":
        base = Literal[f.labels]
    else:
        base = list[Literal[f.labels]]  # type: ignore[valid-type]
    return Optional[base] if f.nullable else base  # noqa: UP045 (typing's own spelling too)


def as_dict(fs: list[Field]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fs:
        spec = _annotation(f)
        if f.kind == "label" and not f.nullable and not f.description:
            spec = list(f.labels)  # a plain list of labels
        out[f.name] = Annotated[spec, f.description] if f.description else spec
    return out


def as_pydantic(fs: list[Field]) -> type[pydantic.BaseModel]:
    spec = {f.name: (_annotation(f), pydantic.Field(description=f.description or None))
            for f in fs}
    return pydantic.create_model("Row", **spec)  # type: ignore[call-overload,no-any-return]


def as_json_schema(fs: list[Field]) -> dict[str, Any]:
    props: dict[str, Any] = {}
    for f in fs:
        if f.kind == "labels":
            prop: dict[str, Any] = {"type": "array", "items": {"enum": list(f.labels)}}
        elif f.kind == "label":
            prop = {"enum": list(f.labels)}
        else:
            prop = {"type": JSON_TYPES[f.kind]}
        if f.description:
            prop["description"] = f.description
        props[f.name] = prop
    return {"type": "object", "properties": props,
            "required": [f.name for f in fs if not f.nullable]}


@given(fields())
def test_every_schema_form_gives_the_same_fields(fs: list[Field]) -> None:
    expected = tuple(fs)
    assert fields_from(as_dict(fs)) == expected
    assert fields_from(as_pydantic(fs)) == expected
    assert fields_from(as_json_schema(fs)) == expected
    assert fields_from(as_pydantic(fs).model_json_schema()) == expected
    assert fields_from(row_schema(expected)) == tuple(  # what goes out comes back
        Field(f.name, f.kind, f.labels, f.nullable, f.description) for f in fs)


@given(fields())
def test_the_prompt_and_schema_name_every_field(fs: list[Field]) -> None:
    task = SchemaTask.build(as_dict(fs), None, None)
    for f in fs:
        assert f"- {f.name} (" in task.system
        if f.description:
            assert f.description in task.system
    schema = task.schema(3)
    assert schema is not None and set(schema["properties"]) == {"1", "2", "3"}


# --- per-field validation ---------------------------------------------------------------

INT = Field("n", "int")
FLOAT = Field("x", "float")
BOOL = Field("b", "bool")


@given(st.integers(-(2**63), 2**63 - 1))
def test_whole_numbers_in_any_lossless_spelling(n: int) -> None:
    for spelling in (n, str(n), f" {n} ", Decimal(n), f"{n}.0", Decimal(f"{n}.000")):
        assert check_value(INT, True, spelling) == (n, None)
    if float(n) == n:
        assert check_value(INT, True, float(n)) == (n, None)


@given(st.integers(2**63, 2**80) | st.integers(-(2**80), -(2**63) - 1))
def test_whole_numbers_out_of_int64_are_refused(n: int) -> None:
    assert check_value(INT, True, n)[0] is None
    assert check_value(INT, True, str(n))[0] is None


@given(st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: not x.is_integer()))
def test_fractions_are_never_rounded_to_whole_numbers(x: float) -> None:
    assert check_value(INT, True, x) == (None, "not a whole number")
    assert check_value(FLOAT, True, x) == (x, None)
    assert check_value(FLOAT, True, repr(x)) == (x, None)


NUMBERISH = st.from_regex(r"\s?[+-]?[0-9]{0,25}(\.[0-9]{0,5})?([eE][+-]?[0-9]{1,3})?\s?",
                          fullmatch=True)


@given(st.text() | NUMBERISH)
def test_a_string_becomes_a_number_only_when_it_spells_that_number(text: str) -> None:
    value, reason = check_value(FLOAT, True, text)
    assert (value is None) != (reason is None)
    if value is not None:
        assert value == float(text.strip())  # surrounding white space aside
    whole, reason = check_value(INT, True, text)
    assert (whole is None) != (reason is None)
    if whole is not None:
        assert Decimal(text.strip()) == whole


@pytest.mark.parametrize("word", ["twelve", "12 apples", "$12", "12,5", "nan", "inf", "0x1f",
                                  "", "1_000", "١٢", "1e999999999"])
def test_no_guessing(word: str) -> None:
    assert check_value(INT, True, word)[0] is None
    assert check_value(FLOAT, True, word)[0] is None


@given(st.booleans(), st.sampled_from([str.upper, str.title, lambda t: f" {t} "]))
def test_booleans(value: bool, spelling: Any) -> None:
    shown = spelling(json.dumps(value))
    assert check_value(BOOL, True, value) == (value, None)
    assert check_value(BOOL, True, shown) == (value, None)


@pytest.mark.parametrize("value", [0, 1, "yes", "no", "1", None, [], "truthy"])
def test_booleans_are_not_guessed(value: Any) -> None:
    assert check_value(BOOL, True, value)[0] is None


@given(st.sampled_from(KINDS), st.booleans())
def test_null_and_missing_are_fine_only_for_optional_fields(kind: str, nullable: bool) -> None:
    field = Field("f", kind, ("a", "b") if kind in ("label", "labels") else (), nullable)  # type: ignore[arg-type]
    for present in (False, True):
        value, reason = check_value(field, present, None)
        assert value is None and (reason is None) == nullable


@given(fields(), st.data())
def test_valid_answers_are_canonical_and_stable(fs: list[Field], data: st.DataObject) -> None:
    task = SchemaTask.build(as_json_schema(fs), None, None)
    answer: dict[str, Any] = {}
    for f in task.fields:
        if f.kind == "labels":
            answer[f.name] = data.draw(st.lists(st.sampled_from(f.labels), unique=True))
        elif f.kind == "label":
            answer[f.name] = data.draw(st.sampled_from(f.labels))
        else:
            strategy = {"str": st.text(min_size=1).filter(lambda t: t.strip() == t and t),
                        "int": st.integers(-(10**12), 10**12),
                        "float": st.floats(allow_nan=False, allow_infinity=False),
                        "bool": st.booleans()}[f.kind]
            answer[f.name] = data.draw(strategy)
    verdict = task.check(json.dumps(answer))
    assert verdict.complete and verdict.answer is not None
    again = task.check(verdict.answer)  # the cached form reads back as itself
    assert again.answer == verdict.answer and again.complete
    decoded = json.loads(verdict.answer)
    for f in task.fields:
        if f.kind == "labels":
            assert decoded[f.name] == [x for x in f.labels if x in answer[f.name]]
        else:
            assert decoded[f.name] == answer[f.name]


def test_union_and_nested_types_are_refused() -> None:
    assert typing.get_origin(int | str) is not None
    for spec in (int | str, list[int], dict[str, int], Literal[1, 2]):
        with pytest.raises(ValueError, match="field 'a'"):
            fields_from({"a": spec})
