"""Row packing: several texts per request, answers read per id, gaps asked again."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

import pandas_llm_annotate as pla
from pandas_llm_annotate.protocol.packing import MAX_ROWS, auto_rows, pack_user, parse_pack
from tests.helpers.local_server import LocalServer, user_text

LABELS = ["even", "odd"]


def truth(text: str) -> str:
    return LABELS[len(text) % 2]


def test_pack_user_is_a_json_list_with_ids() -> None:
    items = json.loads(pack_user(["a", "b\n\"c\"", "中文"]))
    assert items == [{"id": "1", "text": "a"}, {"id": "2", "text": "b\n\"c\""},
                     {"id": "3", "text": "中文"}]


@given(st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=30))
def test_parse_pack_round_trip(answers: list[str]) -> None:
    raw = json.dumps({str(i): a for i, a in enumerate(answers, 1)})
    assert parse_pack(raw, len(answers)) == dict(enumerate(answers, 1))


def test_parse_pack_tolerates_wrappers_and_drops_extras() -> None:
    assert parse_pack('```json\n{"1": "a", "2": "b"}\n```', 2) == {1: "a", 2: "b"}
    assert parse_pack('{"results": {"1": "a"}}', 2) == {1: "a"}
    assert parse_pack('{"1": "a", "7": "x", "2": null}', 2) == {1: "a"}
    assert parse_pack("not json at all", 2) is None
    assert parse_pack('{"1": "a", ', 2) is None


def test_parse_pack_keeps_objects_and_lists_as_json_text() -> None:
    raw = '{"1": {"n": 12, "tag": "中"}, "2": ["a", "b"], "3": true}'
    assert parse_pack(raw, 3) == {1: '{"n": 12, "tag": "中"}', 2: '["a", "b"]'}


def test_auto_rows_bounds() -> None:
    assert auto_rows(["short text"] * 100, answer_tokens=32) == MAX_ROWS
    assert auto_rows(["x" * 4000] * 10, answer_tokens=32) == 1
    assert auto_rows(["short text"] * 100, answer_tokens=32, token_bucket=400) < MAX_ROWS
    assert auto_rows([], answer_tokens=32) == 1


def test_packed_answers_equal_unpacked(opts: dict[str, Any], fresh_sim: Any) -> None:
    texts = [f"please refund order {i} for my card" if i % 3 else f"lost card number {i}"
             for i in range(60)]
    df = pd.DataFrame({"text": texts + texts[:20]})
    labels = ["refund", "card_lost", "other"]
    single = df.llm.annotate("text", labels=labels, **opts)
    assert fresh_sim.stats()["requests"] == 60
    fresh_sim.reset_stats()
    packed = df.llm.annotate("text", labels=labels, rows_per_request=7, **opts)
    rep = pla.last_report()
    assert rep is not None
    assert packed.equals(single)
    assert rep.requests == fresh_sim.stats()["requests"] == 9  # ceil(60 / 7)
    assert rep.rows_per_request > 6 and rep.reasked == 0 and rep.failed == 0


def test_bad_pack_answers_are_asked_again_never_guessed(tmp_path: Any) -> None:
    """A server that garbles packs: missing ids, invalid labels, non-JSON. Single
    requests get the right answer, so every row must end up right."""

    def reply(body: dict[str, Any]) -> str:
        content = user_text(body)
        try:
            items = json.loads(content)
        except ValueError:
            return truth(content)  # asked alone
        if not isinstance(items, list):
            return truth(content)
        if len(items) >= 6:
            return "Sure! Here are the labels: ..."  # no JSON at all
        out = {it["id"]: truth(it["text"]) for it in items}
        out.pop("2", None)  # a missing id
        if "3" in out:
            out["3"] = "maybe"  # not a label
        out["99"] = "odd"  # an extra id
        return json.dumps(out)

    texts = [f"text {'x' * i}" for i in range(40)]
    df = pd.DataFrame({"text": texts})
    with LocalServer(reply) as server:
        got = df.llm.annotate("text", labels=LABELS, model="m", base_url=server.base_url,
                              cache=str(tmp_path), rows_per_request=8, progress=False)
    rep = pla.last_report()
    assert rep is not None
    assert list(got) == [truth(t) for t in texts]
    assert rep.failed == 0 and rep.reasked > 0


def test_structured_output_negotiation_steps_down_once(tmp_path: Any) -> None:
    """Like llama.cpp's server: json_schema → HTTP 500 naming response_format;
    json_object with a schema is accepted. The rejected form is not sent again."""
    from aiohttp import web

    def reply(body: dict[str, Any]) -> Any:
        fmt = body.get("response_format") or {}
        if fmt.get("type") == "json_schema":
            return web.json_response(
                {"error": {"message": "response_format: 'json_schema' is not supported"}},
                status=500)
        items = json.loads(user_text(body))
        assert fmt == {"type": "json_object", "schema": fmt["schema"]}
        return json.dumps({it["id"]: truth(it["text"]) for it in items})

    texts = [f"row {'y' * i}" for i in range(30)]
    df = pd.DataFrame({"text": texts})
    base = {"labels": LABELS, "model": "m", "cache": str(tmp_path), "rows_per_request": 5,
            "progress": False}
    with LocalServer(reply) as server:
        got = df.llm.annotate("text", base_url=server.base_url, max_concurrency=1, **base)
        schema_tries = [b for b in server.bodies
                        if (b.get("response_format") or {}).get("type") == "json_schema"]
        assert len(schema_tries) == 1  # rejected once, then never sent again
        rep = pla.last_report()
        assert rep is not None and rep.answer_format == "json_object+schema"
        assert rep.failed == 0 and list(got) == [truth(t) for t in texts]
        # The choice is remembered for this server in the process.
        df2 = pd.DataFrame({"text": [t + "!" for t in texts]})
        df2.llm.annotate("text", base_url=server.base_url, **base)
        assert len([b for b in server.bodies
                    if (b.get("response_format") or {}).get("type") == "json_schema"]) == 1
