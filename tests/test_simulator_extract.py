"""The simulator answers field requests (`extract`) deterministically: from the answer's
JSON schema or the prompt's `Fields:` block, packed or not, with wrong fields on demand."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pandas_llm_annotate.protocol.packing import pack_system, pack_user
from pandas_llm_annotate.protocol.structured import pack_schema, response_format
from pandas_llm_annotate.simulator import SimulatorConfig, answer_messages, serve
from pandas_llm_annotate.simulator.extract import parse_fields
from pandas_llm_annotate.tasks.schema import SchemaTask

FIELDS = {"product": str, "amount": float | None, "count": int,
          "currency": ["USD", "EUR", "GBP"], "urgent": bool}
TEXT = "Urgent: refund 12.5 eur for the blender"


def ask(task: SchemaTask, texts: list[str], form: str, **kw: Any) -> Any:
    packed = len(texts) > 1
    system = pack_system(task.system, task.pack_answer) if packed else task.system
    user = pack_user(texts) if packed else texts[0]
    schema = task.schema(len(texts) if packed else None)
    assert schema is not None
    fmt = response_format(form, schema)
    messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    content, answered = answer_messages(messages, fmt, **kw)
    assert answered == texts
    return json.loads(content)


@pytest.mark.parametrize("form", ["json_schema", "json_object+schema", "json_object", "plain"])
def test_fields_are_answered_from_the_schema_or_the_prompt(form: str) -> None:
    task = SchemaTask.build(FIELDS, None, None)
    assert ask(task, [TEXT], form) == {"product": "urgent blender", "amount": 12.5,
                                       "count": 12, "currency": "EUR", "urgent": True}
    calm = ask(task, ["no numbers here"], form)
    assert calm["amount"] is None and calm["count"] == 0 and calm["urgent"] is False


def test_packed_requests_get_one_object_per_id() -> None:
    task = SchemaTask.build(FIELDS, None, None)
    texts = [TEXT, "20 GBP please", "nothing"]
    answer = ask(task, texts, "json_schema")
    assert set(answer) == {"1", "2", "3"}
    assert answer["2"]["currency"] == "GBP" and answer["2"]["count"] == 20
    assert ask(task, [TEXT], "json_schema") == answer["1"]


def test_a_pack_of_one_is_keyed_by_its_id_not_wrapped() -> None:
    task = SchemaTask.build(FIELDS, None, None)
    schema = pack_schema(1, task.schema(None) or {})
    messages = [{"role": "system", "content": pack_system(task.system, "{...}")},
                {"role": "user", "content": pack_user([TEXT])}]
    content, _ = answer_messages(messages, response_format("json_object+schema", schema))
    assert set(json.loads(content)) == {"1"}


def test_bad_fields_are_seeded_per_text_and_field() -> None:
    task = SchemaTask.build(FIELDS, None, None)
    texts = [f"order {i} of 3 items, urgent" for i in range(200)]
    answers = [ask(task, [t], "json_schema", bad_fields=0.2, seed=1) for t in texts]
    again = [ask(task, [t], "json_schema", bad_fields=0.2, seed=1) for t in texts]
    assert answers == again  # same seed, same text: same answer
    goods = [ask(task, [t], "json_schema") for t in texts]
    missing = sum(k not in a for a in answers for k in FIELDS)
    wrong = sum(k in a and a[k] != g[k] for a, g in zip(answers, goods, strict=True)
                for k in FIELDS)
    total = len(texts) * len(FIELDS)
    assert 0.06 < missing / total < 0.14 and 0.06 < wrong / total < 0.14  # about 10 % each
    other_seed = [ask(task, [t], "json_schema", bad_fields=0.2, seed=2) for t in texts]
    assert other_seed != answers


def test_fields_block_parses_names_types_and_optional() -> None:
    task = SchemaTask.build({"a b": int | None, "note": str,
                             "cur": ["x (1)", "y, z"]}, "Read it.", None)
    parsed = parse_fields(task.system)
    assert [(f.name, f.kind, f.labels, f.nullable) for f in parsed] == [
        ("a b", "integer", (), True), ("note", "string", (), False),
        ("cur", "enum", ("x (1)", "y, z"), False)]


def test_label_requests_are_answered_as_before() -> None:
    """A one-string object schema is a label (or free text) answer, not a field request."""
    enum = {"type": "string", "enum": ["card_lost", "refund"]}
    schema = {"type": "object", "properties": {"label": enum}, "required": ["label"],
              "additionalProperties": False}
    messages = [{"role": "user", "content": "a refund please"}]
    content, _ = answer_messages(messages, response_format("json_schema", schema))
    assert json.loads(content) == {"label": "refund"}


def test_bad_fields_is_validated_and_passed_to_a_child() -> None:
    with pytest.raises(ValueError, match="bad_fields"):
        SimulatorConfig(bad_fields=1.5)
    task = SchemaTask.build(FIELDS, None, None)
    with serve(subprocess=True, bad_fields=1.0) as sim:
        import urllib.request

        body = {"model": "m", "messages": [{"role": "system", "content": task.system},
                                           {"role": "user", "content": TEXT}]}
        req = urllib.request.Request(sim.base_url + "/chat/completions",
                                     data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(req, timeout=10) as resp:
            content = json.load(resp)["choices"][0]["message"]["content"]
    answer = json.loads(content)
    good = ask(task, [TEXT], "plain")
    assert all(answer.get(k) != v for k, v in good.items())  # every field wrong or missing
