"""`extract` end to end against the real llama.cpp server (SmolLM2-135M), through the
recording proxy of `test_real_llm.py`: what went over the wire is what the frame holds,
field by field. Skips without the server, the model or the shared data."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from test_real_llm import RealLLM, data, llm, options  # noqa: F401 (fixtures)

from pandas_llm_annotate.tasks.schema import SchemaTask


@pytest.mark.real_llm
@pytest.mark.slow
def test_extract_values_are_what_the_model_said(
        llm: RealLLM, data: tuple[pd.DataFrame, list[str]], tmp_path: Path) -> None:  # noqa: F811
    frame, labels = data
    rows = frame.iloc[:20]
    schema = {"intent": labels, "card_related": bool, "amount": float | None}
    mark = len(llm.proxy)
    out = rows.llm.extract("text", schema, **options(llm, tmp_path, max_concurrency=2))
    rep = out.attrs["llm_report"]
    assert rep.status == "finished" and rep.answer_format == "json_object+schema"
    exchanges = [ex for ex in llm.proxy.since(mark) if ex.status == 200]
    assert all(set(ex.body["response_format"]["schema"]["properties"]) == set(schema)
               for ex in exchanges)
    task = SchemaTask.build(schema, None, None)
    said = {ex.texts[0]: task.check(ex.content or "") for ex in exchanges}
    assert set(said) == set(rows["text"])
    for label, text in rows["text"].items():
        verdict = said[text]
        expected = json.loads(verdict.answer) if verdict.answer is not None else {}
        for field in schema:
            got = out.loc[label, field]
            assert (pd.isna(got) and expected.get(field) is None) or got == expected[field]
        wrong = {p.field for p in verdict.problems}
        listed = set(rep.failures.loc[rep.failures["index"] == label, "field"].dropna())
        assert listed == wrong
    valid = 1 - rep.failures["index"].nunique() / len(rows)
    print(f"\nextract on {len(rows)} real rows: every field valid in {valid:.0%}; "
          f"{rep.prompt_tokens / len(rows):.0f} prompt tokens per row")
