"""Few-shot `examples=`, label definitions (`labels={label: description}`) and
`multi_label=True`: in the prompt's static prefix, in the cache key, checked up front."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pydantic import BaseModel

import pandas_llm_annotate as pla
from pandas_llm_annotate.simulator import SimulatorHandle
from tests.helpers.local_server import LocalServer, user_text

LABELS = ["card_lost", "refund", "card_arrival"]
TEXTS = ["I lost my card and want a refund", "where is my card arrival", "hello",
         "refund please", None, "hello"]
EXAMPLES = [("my card is gone", "card_lost"), ("money back please", "Refund")]


def report(out: pd.Series | pd.DataFrame) -> pla.Report:
    rep = out.attrs["llm_report"]
    assert isinstance(rep, pla.Report)
    return rep


def system_of(body: dict[str, Any]) -> str:
    return str(body["messages"][0]["content"])


def test_examples_go_in_the_static_prefix(tmp_path: Path) -> None:
    frame = pd.DataFrame({"intent": ["card_lost", "refund"],
                          "text": ["my card is gone", "money back please"]})
    with LocalServer(lambda body: "refund") as server:
        kw: dict[str, Any] = dict(model="local", base_url=server.base_url, cache=False,
                                  progress=False)
        pd.Series(["a", "b"], name="text").llm.annotate(labels=LABELS, examples=EXAMPLES, **kw)
        pd.DataFrame({"text": ["a"]}).llm.annotate("text", labels=LABELS, examples=frame, **kw)
        pd.Series(["c", "d", "e"]).llm.annotate(labels=LABELS, examples=EXAMPLES,
                                                 rows_per_request=3, **kw)
        bodies = server.bodies
    system = system_of(bodies[0])
    assert system.endswith("Examples:\n\nText: my card is gone\nAnswer: card_lost\n\n"
                           "Text: money back please\nAnswer: refund")  # the canonical label
    assert system_of(bodies[1]) == system == system_of(bodies[2])  # one prefix for all
    packed = bodies[3]
    assert system_of(packed).startswith(system)  # the examples come before the rows
    assert "my card is gone" not in user_text(packed)


def test_examples_are_part_of_the_cache_key(fresh_sim: SimulatorHandle,
                                            opts: dict[str, Any]) -> None:
    s = pd.Series(TEXTS)
    s.llm.annotate(labels=LABELS, examples=EXAMPLES, **opts)
    assert fresh_sim.stats()["requests"] == 4
    again = s.llm.annotate(labels=LABELS, examples=EXAMPLES, **opts)
    assert report(again).requests == 0
    other = s.llm.annotate(labels=LABELS, examples=EXAMPLES[:1], **opts)
    plain = s.llm.annotate(labels=LABELS, **opts)
    assert report(other).requests == 4 and report(plain).requests == 4
    assert fresh_sim.stats()["requests"] == 12


@pytest.mark.parametrize(("examples", "where", "reason"), [
    ([("a", "card_lost"), ("b", "banana")], r"examples\[1\]", "not one of the labels"),
    (pd.DataFrame({"text": ["a", "b"], "label": ["refund", "nope"]}, index=["x", "y"]),
     "examples row 'y'", "not one of the labels"),
    ([("", "refund")], r"examples\[0\]", "non-empty string"),
    ([("a", "refund", "extra")], r"examples\[0\]", "pair"),
    ("card_lost", "examples must be", "DataFrame"),
    (pd.DataFrame({"text": ["a"], "x": ["refund"], "y": ["refund"]}), "columns", "one answer"),
])
def test_bad_examples_are_config_errors_naming_the_example(
        examples: Any, where: str, reason: str, opts: dict[str, Any]) -> None:
    with pytest.raises(pla.ConfigError, match=where) as info:
        pd.Series(["t"], name="text").llm.annotate(labels=LABELS, examples=examples, **opts)
    assert reason in str(info.value)


def test_extract_examples_from_a_frame_pairs_or_models(fresh_sim: SimulatorHandle,
                                                       opts: dict[str, Any]) -> None:
    class Row(BaseModel):
        amount: float | None
        currency: str

    schema = {"amount": float | None, "currency": ["USD", "EUR"]}
    frame = pd.DataFrame({"currency": ["eur", "USD"], "text": ["12 euros", "a dollar"],
                          "amount": [12, None]})
    texts = pd.Series(["pay 3 usd"], name="text")
    out = texts.llm.extract(schema, examples=frame, **opts)
    assert out.iloc[0].to_dict() == {"amount": 3.0, "currency": "USD"}
    from pandas_llm_annotate.tasks.schema import SchemaTask

    by_frame = SchemaTask.build(schema, None, None, examples=frame, column="text").system
    pairs = [("12 euros", {"amount": 12, "currency": "EUR"}),
             ("a dollar", Row(amount=None, currency="USD"))]
    assert SchemaTask.build(schema, None, None, examples=pairs).system == by_frame
    assert by_frame.endswith('Text: a dollar\nAnswer: {"amount":null,"currency":"USD"}')
    assert 'Answer: {"amount":12.0,"currency":"EUR"}' in by_frame


@pytest.mark.parametrize(("examples", "message"), [
    ([("t", {"amount": "twelve", "currency": "EUR"})], "field 'amount': not a number"),
    ([("t", {"amount": 1})], "field 'currency': missing"),
    ([("t", {"amount": 1, "currency": "EUR", "tip": 2})], "are not fields"),
    ([("t", "EUR")], "dict of field values"),
    (pd.DataFrame({"text": ["t"], "amount": [1.0], "currency": ["EUR"], "x": [1]}),
     "not fields"),
])
def test_bad_extract_examples(examples: Any, message: str, opts: dict[str, Any]) -> None:
    schema = {"amount": float | None, "currency": ["USD", "EUR"]}
    with pytest.raises(pla.ConfigError, match=message):
        pd.Series(["x"]).llm.extract(schema, examples=examples, **opts)


# --- label definitions ---------------------------------------------------------------------

DEFINED = {"card_lost": "the customer lost a card or had it stolen",
           "refund": "the customer wants money back", "card_arrival": None}


def test_label_descriptions_go_in_the_prompt_and_labels_stay_the_answers(
        fresh_sim: SimulatorHandle, opts: dict[str, Any]) -> None:
    s = pd.Series(["my wallet was stolen", "give me my money back"])
    defined = s.llm.annotate(labels=DEFINED, **opts)
    assert defined.tolist() == ["card_lost", "refund"]  # the simulator reads the meanings
    bare = s.llm.annotate(labels=list(DEFINED), **opts)
    assert report(bare).requests == 2  # another prompt: not the same cache entries
    from pandas_llm_annotate.tasks.labels import LabelTask

    system = LabelTask.build(None, DEFINED, None).system
    assert system.endswith("Labels (label: meaning):\n- card_lost: the customer lost a card "
                           "or had it stolen\n- refund: the customer wants money back\n"
                           "- card_arrival")


@pytest.mark.parametrize(("labels", "message"), [
    ({"a: b": "x", "c": "y"}, "contain ': '"),
    ({"a": 1, "b": "y"}, "must be a string"),
])
def test_bad_label_definitions(labels: Any, message: str, opts: dict[str, Any]) -> None:
    with pytest.raises(pla.ConfigError, match=message):
        pd.Series(["x"]).llm.annotate(labels=labels, **opts)


# --- multi-label -----------------------------------------------------------------------------

def test_multi_label_gives_a_list_per_row(fresh_sim: SimulatorHandle,
                                         opts: dict[str, Any]) -> None:
    s = pd.Series(TEXTS, index=list("uvwxyz"))
    out = s.llm.annotate(labels=LABELS, multi_label=True, **opts)
    assert out.dtype == object and pd.isna(out["y"])
    assert out["u"] == ["card_lost", "refund", "card_arrival"]  # in the order of the labels
    assert out["w"] == [] and out["z"] == []  # none applies: an empty list, broadcast
    assert out["x"] == ["refund"] and report(out).requests == 4
    assert report(out).answer_format == "json_schema"
    again = s.llm.annotate(labels=LABELS, multi_label=True, **opts)
    assert report(again).requests == 0 and again.equals(out)  # cached as JSON lists
    single = s.llm.annotate(labels=LABELS, **opts)
    assert report(single).requests == 4  # multi_label is part of the cache key
    for extra in ({"rows_per_request": 3}, {"structured": False},
                  {"rows_per_request": 2, "structured": False}):
        other = s.llm.annotate(labels=LABELS, multi_label=True, **opts, **extra)
        assert other.equals(out), extra


MULTI_RAW = {"a": '["refund", "card_lost", "refund"]', "b": "refund, Card Lost",
             "c": '{"labels": []}', "d": '["refund", "banana"]', "e": "no idea"}


def test_multi_label_answers_are_read_and_checked(tmp_path: Path) -> None:
    with LocalServer(lambda body: MULTI_RAW[user_text(body)]) as server:
        out = pd.Series(list("abcde")).llm.annotate(
            labels=LABELS, multi_label=True, model="local", base_url=server.base_url,
            cache=tmp_path / "c", progress=False)
    assert out.tolist()[:3] == [["card_lost", "refund"], ["card_lost", "refund"], []]
    assert out.iloc[3:].isna().all()  # an item that is not a label fails the whole answer
    failures = report(out).failures
    assert failures["raw_answer"].tolist() == [MULTI_RAW["d"], MULTI_RAW["e"]]
    assert '"banana" is not one of the labels' in failures["error"].iloc[0]


def test_multi_label_chunks_are_united(tmp_path: Path) -> None:
    def reply(body: dict[str, Any]) -> str:
        return json.dumps(["card_arrival"] if "ONE" in user_text(body) else ["card_lost"])

    text = "".join(f"Sentence number {i:02d} is tagged {t} here. "
                   for i, t in enumerate(["TWO", "ONE", "TWO"]))
    with LocalServer(reply) as server:
        out = pd.Series([text]).llm.annotate(
            labels=LABELS, multi_label=True, model="local", base_url=server.base_url,
            max_chunk_tokens=14, cache=False, progress=False)
        assert server.requests == 3
    assert out.iloc[0] == ["card_lost", "card_arrival"]


def test_multi_label_needs_labels_and_checks_examples(opts: dict[str, Any]) -> None:
    with pytest.raises(pla.ConfigError, match="needs labels"):
        pd.Series(["x"]).llm.annotate("Which?", multi_label=True, **opts)
    with pytest.raises(pla.ConfigError, match="examples"):
        pd.Series(["x"]).llm.annotate(labels=LABELS, multi_label=True,
                                      examples=[("t", ["refund", "nope"])], **opts)
    from pandas_llm_annotate.tasks.labels import LabelTask

    task = LabelTask.build(None, LABELS, None, multi_label=True,
                           examples=[("t", ("Refund", "card_lost")), ("u", "refund"), ("v", [])])
    assert 'Answer: ["card_lost", "refund"]\n\nText: u\nAnswer: ["refund"]' in task.system
    assert task.system.endswith("Text: v\nAnswer: []")
