"""orjson on the hot path, `json` where orjson refuses: a text with a lone surrogate (read
with `surrogateescape`) is still sent, an answer `json` can read is still read."""

from __future__ import annotations

import json

import numpy as np

from pandas_llm_annotate.protocol.answer import parse_json
from pandas_llm_annotate.protocol.transport import encode


def test_a_body_orjson_refuses_is_sent_as_json_would() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "bad \udcff byte"}],
            "max_tokens": 2**70}  # a lone surrogate; an int over 64 bits
    assert json.loads(encode(body)) == body


def test_numpy_numbers_in_a_body_are_numbers() -> None:
    body = {"temperature": np.float64(0.5), "max_tokens": np.int64(8)}
    assert json.loads(encode(body)) == {"temperature": 0.5, "max_tokens": 8}


def test_an_answer_only_json_reads_is_read() -> None:
    raw = (b'{"choices": [{"message": {"content": "smile \\ud83d"}}],'
           b' "usage": {"prompt_tokens": 3, "completion_tokens": 1}}')
    done = parse_json(raw, 0.1, {})
    assert done.content == "smile \ud83d" and done.prompt_tokens == 3
