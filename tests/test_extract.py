"""`extract`: typed columns from a schema, on the one pipeline (dedupe, cache, chunking,
packing, report), against the simulator and small local servers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pytest
from pydantic import BaseModel, Field

import pandas_llm_annotate as pla
from pandas_llm_annotate.pipeline.chunking import split_text
from pandas_llm_annotate.simulator import SimulatorHandle, serve
from tests.helpers.local_server import LocalServer, user_text

FIELDS: dict[str, Any] = {"product": str, "amount": float | None, "count": int,
                          "currency": ["USD", "EUR", "GBP"], "urgent": bool}


class Ticket(BaseModel):
    product: str = Field(description="the product the ticket is about")
    amount: float | None
    count: int
    currency: Literal["USD", "EUR", "GBP"]
    urgent: bool


JSON_SCHEMA = {
    "type": "object",
    "properties": {
        "product": {"type": "string", "description": "the product the ticket is about"},
        "amount": {"type": ["number", "null"]},
        "count": {"type": "integer"},
        "currency": {"type": "string", "enum": ["USD", "EUR", "GBP"]},
        "urgent": {"type": "boolean"},
    },
    "required": ["product", "amount", "count", "currency", "urgent"],
}
TEXTS = ["Urgent: refund 12.5 EUR for the blender", "my toaster cost 30 usd",
         "hello there", "Urgent: refund 12.5 EUR for the blender", None,
         "2 kettles, 40 GBP"]
DTYPES = {"product": "string", "amount": "Float64", "count": "Int64", "urgent": "boolean"}


def report(out: pd.Series | pd.DataFrame) -> pla.Report:
    rep = out.attrs["llm_report"]
    assert isinstance(rep, pla.Report)
    return rep


@pytest.fixture(scope="module")
def bad_sim() -> Iterator[SimulatorHandle]:
    """A simulator that answers 30 % of fields wrong (half missing, half a wrong type)."""
    with serve(latency=0.01, bad_fields=0.3, seed=5) as handle:
        yield handle


@pytest.mark.parametrize("schema", [FIELDS, Ticket, JSON_SCHEMA, Ticket.model_json_schema()],
                         ids=["dict", "pydantic", "json-schema", "pydantic-json-schema"])
def test_extract_gives_typed_columns_aligned_to_the_index(
        schema: Any, fresh_sim: SimulatorHandle, opts: dict[str, Any]) -> None:
    df = pd.DataFrame({"text": TEXTS}, index=[10, 30, 20, 10, 5, 7])  # duplicate labels too
    out = df.llm.extract("text", schema, **opts)
    assert list(out.columns) == list(FIELDS) and out.index.equals(df.index)
    assert {c: str(out[c].dtype) for c in DTYPES} == {c: pd.api.types.pandas_dtype(d).name
                                                      for c, d in DTYPES.items()}
    assert list(out["currency"].cat.categories) == ["USD", "EUR", "GBP"]
    first = out.iloc[0].to_dict()
    assert first == {"product": "urgent blender", "amount": 12.5, "count": 12,
                     "currency": "EUR", "urgent": True}
    assert out.iloc[3].to_dict() == first  # a duplicate text: asked once, broadcast
    assert out.iloc[4].isna().all()  # a missing cell
    assert pd.isna(out.iloc[2]["amount"]) and out.iloc[2]["count"] == 0
    rep = report(out)
    assert rep.requests == fresh_sim.stats()["requests"] == 4 and rep.failed == 0
    assert list(rep.failures.columns) == ["index", "text", "field", "error", "raw_answer"]
    assert rep.answer_format == "json_schema"
    json.dumps(rep.to_dict())


def test_series_accessor_module_function_and_async_twin_agree(
        fresh_sim: SimulatorHandle, opts: dict[str, Any]) -> None:
    series = pd.Series(TEXTS, name="text")
    by_series = series.llm.extract(FIELDS, **opts)
    by_function = pla.extract(series, FIELDS, **opts)
    by_async = asyncio.run(pla.aextract(series, FIELDS, **opts))
    by_frame_async = asyncio.run(series.to_frame().llm.aextract("text", FIELDS, **opts))
    for other in (by_function, by_async, by_frame_async):
        pd.testing.assert_frame_equal(other, by_series)
    assert report(by_function).cache_hits == 4  # the first run cached every text


def test_wrong_fields_are_na_listed_and_the_rest_kept(bad_sim: SimulatorHandle,
                                                      tmp_path: Path) -> None:
    texts = [f"order {i}: {i + 1} urgent boxes, {i}.5 USD" for i in range(40)]
    df = pd.DataFrame({"text": texts})
    kw: dict[str, Any] = dict(model="m", base_url=bad_sim.base_url, cache=tmp_path / "c",
                              progress=False)
    out = df.llm.extract("text", FIELDS, **kw)
    rep = report(out)
    lines = rep.failures
    assert rep.failed == 0 and rep.fields_failed == len(lines) > 10
    assert set(lines["error"]) <= {"missing", "not a number", "expected true or false, got a "
                                   "string", "expected a string, got a list",
                                   "not one of the labels"}
    for _, line in lines.iterrows():  # each listed field is NA, with its raw value
        assert pd.isna(out.loc[line["index"], line["field"]])
        assert pd.isna(line["raw_answer"]) == (line["error"] == "missing")
    bad_cells = {(r["index"], r["field"]) for _, r in lines.iterrows()}
    required = [f for f in FIELDS if f != "amount"]  # an optional field left out is null
    good = [(i, f) for i in df.index for f in required if (i, f) not in bad_cells]
    assert all(pd.notna(out.loc[i, f]) for i, f in good)  # the other fields are kept
    assert "amount" not in set(lines["field"][lines["error"] == "missing"])
    d = rep.to_dict()
    assert d["fields_failed"] == len(lines) and json.dumps(d)
    html = rep._repr_html_()
    assert "wrong fields or rows without an answer" in html and "<th" in html
    assert {"field", "raw_answer"} <= set(d["failures"][0])

    # Only complete answers were cached: a rerun asks again for the rows with a bad field.
    bad_sim.reset_stats()
    again = df.llm.extract("text", FIELDS, **kw)
    asked = lines["index"].nunique()
    assert report(again).requests == bad_sim.stats()["requests"] == asked
    assert report(again).cache_hits == len(texts) - asked
    pd.testing.assert_frame_equal(again, out)


def test_rerun_of_a_clean_extract_sends_no_request(fresh_sim: SimulatorHandle,
                                                   opts: dict[str, Any]) -> None:
    df = pd.DataFrame({"text": TEXTS})
    first = df.llm.extract("text", FIELDS, **opts)
    fresh_sim.reset_stats()
    again = df.llm.extract("text", FIELDS, **opts)
    assert report(again).requests == fresh_sim.stats()["requests"] == 0
    pd.testing.assert_frame_equal(again, first)
    other_prompt = df.llm.extract("text", FIELDS, "Read the support ticket.", **opts)
    assert report(other_prompt).requests == 4  # the prompt is part of the cache key


def test_packing_asks_rows_with_bad_fields_again_alone(bad_sim: SimulatorHandle,
                                                       tmp_path: Path) -> None:
    texts = [f"ticket {i}: {i} urgent items for {i}.25 EUR" for i in range(30)]
    df = pd.DataFrame({"text": texts})
    kw: dict[str, Any] = dict(model="m", base_url=bad_sim.base_url, progress=False)
    single = df.llm.extract("text", FIELDS, cache=tmp_path / "a", **kw)
    bad_rows = report(single).failures["index"].nunique()
    assert bad_rows > 0
    bad_sim.reset_stats()
    packed = df.llm.extract("text", FIELDS, cache=tmp_path / "b", rows_per_request=7, **kw)
    rep = report(packed)
    assert rep.reasked == bad_rows  # each row with a bad field asked again, alone
    assert rep.requests == bad_sim.stats()["requests"] == 5 + bad_rows  # ceil(30 / 7) packs
    pd.testing.assert_frame_equal(packed, single)
    pd.testing.assert_frame_equal(rep.failures, report(single).failures)


def test_auto_packing_and_plain_instructions(fresh_sim: SimulatorHandle,
                                             opts: dict[str, Any]) -> None:
    df = pd.DataFrame({"text": [f"{i} parcels, urgent, {i} GBP" for i in range(60)]})
    opts = {**opts, "cache": False}
    single = df.llm.extract("text", FIELDS, **opts)
    auto = df.llm.extract("text", FIELDS, **opts, rows_per_request="auto")
    plain = df.llm.extract("text", FIELDS, **opts, structured=False)
    pd.testing.assert_frame_equal(auto, single)
    pd.testing.assert_frame_equal(plain, single)
    assert report(auto).requests < 10 and report(plain).answer_format == "plain"


# --- chunking: the merge policy per field type ---------------------------------------------

CHUNK_ANSWERS = {
    "ONE": {"label": "b", "n": None, "x": None, "flag": False, "name": "", "tags": ["z"]},
    "TWO": {"label": "a", "n": 7, "x": 1.5, "flag": True, "name": "kettle", "tags": ["x"]},
    "THREE": {"label": "a", "n": 9, "x": 2.5, "flag": False, "name": "pot", "tags": ["z"]},
    "FOUR": {"label": "b", "n": 1, "x": None, "flag": False, "name": "cup", "tags": []},
}
CHUNK_FIELDS = {"label": ["a", "b"], "n": int | None, "x": float | None, "flag": bool,
                "name": str | None, "tags": list[Literal["x", "y", "z"]]}


def _chunk_reply(body: dict[str, Any]) -> str:
    text = user_text(body)
    return json.dumps(next(v for k, v in CHUNK_ANSWERS.items() if k in text))


def test_chunk_answers_merge_per_field_type(tmp_path: Path) -> None:
    def sentence(tag: str, i: int) -> str:
        return f"Sentence number {i:02d} is tagged {tag} here. "

    budget = 14  # each sentence is a chunk of its own
    votes = "".join(sentence(t, i) for i, t in enumerate(["ONE", "TWO", "THREE"]))
    tie = "".join(sentence(t, i) for i, t in enumerate(["ONE", "TWO", "THREE", "FOUR"]))
    assert len(split_text(votes, budget)) == 3 and len(split_text(tie, budget)) == 4
    df = pd.DataFrame({"text": [votes, tie, "ONE"]})
    with LocalServer(_chunk_reply) as server:
        out = df.llm.extract("text", CHUNK_FIELDS, model="local", base_url=server.base_url,
                             max_chunk_tokens=budget, cache=tmp_path / "c", progress=False)
    assert out.iloc[0].to_dict() == {
        "label": "a",  # a vote, 2 to 1
        "n": 7, "x": 1.5,  # numbers: the first non-null
        "flag": True,  # any true
        "name": "kettle",  # the first non-empty string
        "tags": ["x", "z"],  # the union, in the order of the labels
    }
    assert out.iloc[1]["label"] == "b"  # 2 to 2: the earliest chunk's answer
    assert out.iloc[2].to_dict() == {"label": "b", "n": None, "x": None, "flag": False,
                                     "name": None, "tags": ["z"]}


def test_a_field_wrong_in_one_chunk_is_kept_from_another(tmp_path: Path) -> None:
    answers = {"ONE": {"n": "many", "flag": True}, "TWO": {"n": 4, "flag": "maybe"},
               "THREE": {"n": "lots", "flag": False}}

    def reply(body: dict[str, Any]) -> str:
        return json.dumps(next(v for k, v in answers.items() if k in user_text(body)))

    text = "".join(f"Sentence number {i:02d} is tagged {t} here. "
                   for i, t in enumerate(["ONE", "TWO", "THREE"]))
    with LocalServer(reply) as server:
        out = pd.Series([text, "THREE"]).llm.extract(
            {"n": int, "flag": bool}, model="local", base_url=server.base_url,
            max_chunk_tokens=14, cache=tmp_path / "c", progress=False)
    assert out.iloc[0].to_dict() == {"n": 4, "flag": True}
    lines = report(out).failures
    assert lines[["index", "field", "error", "raw_answer"]].values.tolist() == [
        [1, "n", "not a number", '"lots"']]  # only the field left without a value


def test_answers_that_are_not_objects_fail_the_row(tmp_path: Path) -> None:
    replies = {"a": "Sure! The product is a kettle.", "b": '```json\n{"n": "12"}\n```',
               "c": 'Here: {"result": {"n": 12.0}}', "d": '{"n": 12.5}'}
    with LocalServer(lambda body: replies[user_text(body)]) as server:
        out = pd.Series(list("abcd")).llm.extract(
            {"n": int}, model="local", base_url=server.base_url, cache=tmp_path / "c",
            progress=False)
    assert out["n"].tolist()[1:3] == [12, 12] and out["n"].isna().tolist() == [
        True, False, False, True]
    rep = report(out)
    assert rep.failed == 1 and rep.fields_failed == 1
    whole = rep.failures[rep.failures["field"].isna()].iloc[0]
    assert whole["error"] == "answer is not a JSON object" and whole["index"] == 0
    assert rep.failures[rep.failures["field"] == "n"]["error"].tolist() == ["not a whole number"]


@pytest.mark.parametrize(("schema", "message"), [
    ("amount", "dict of field types"),
    ({}, "no fields"),
    ({"a": dict}, "field 'a'"),
    ({"a": int | str}, "field 'a'"),
    ({"a": ["x", "x"]}, "duplicate labels"),
    ({"a": [1, 2]}, "labels must be strings"),
    ({" a": int}, "surrounding spaces"),
    ({"type": "object", "properties": {"a": {"type": "object"}}}, "field 'a'"),
])
def test_bad_schemas_are_config_errors(schema: Any, message: str,
                                       opts: dict[str, Any]) -> None:
    with pytest.raises(pla.ConfigError, match=message):
        pd.Series(["x"]).llm.extract(schema, **opts)
    rep = pla.last_report()
    assert rep is not None and rep.status == "failed" and message.split()[0] in rep.message
