"""Row packing: several distinct texts in one request, answered as one JSON object.

The static instructions go first (system message) and the rows last (user
message: a JSON list of `{"id", "text"}`), so servers with prompt caching reuse
the prefix. Answers are read per id; what is missing, extra or unparsable is
never guessed: the caller asks those rows again.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from ..text import estimate_tokens

PACK_INSTRUCTIONS = (
    "You will get a JSON list of objects with keys \"id\" and \"text\". Treat each text on "
    "its own, as instructed above. Reply with one JSON object only, mapping every id to its "
    "answer"
)
MAX_ROWS = 25  # upper bound for rows_per_request="auto"
PROMPT_BUDGET = 1500  # tokens of rows per packed request for "auto"
ROW_OVERHEAD_TOKENS = 10  # the {"id": ..., "text": ...} wrapper and the answer's key
_OBJECT = re.compile(r"\{.*\}", re.S)


def pack_system(system: str, answer: str = '"..."') -> str:
    """The system prompt of a packed request; `answer` shows one answer's shape."""
    return f'{system}\n\n{PACK_INSTRUCTIONS}, e.g. {{"1": {answer}, "2": {answer}}}.'



def pack_user(texts: Sequence[str]) -> str:
    """The rows as a JSON list; ids are 1-based positions in the pack."""
    return json.dumps(
        [{"id": str(i), "text": t} for i, t in enumerate(texts, 1)], ensure_ascii=False
    )


def parse_pack(raw: str, size: int) -> dict[int, str] | None:
    """`{position: answer}` for the ids 1..size found in the answer; None when the
    answer holds no JSON object at all. Extra ids and nulls are dropped; numbers become
    their text, objects and lists their JSON text (the task checks them)."""
    match = _OBJECT.search(raw)
    if match is None:
        return None
    try:
        data = json.loads(match.group(0))
    except ValueError:
        return None
    if isinstance(data, dict) and len(data) == 1:
        inner = next(iter(data.values()))
        if isinstance(inner, dict) and not {str(i) for i in range(1, size + 1)} & set(data):
            data = inner  # {"results": {...}} wrappers
    if not isinstance(data, dict):
        return None
    found: dict[int, str] = {}
    for i in range(1, size + 1):
        value = data.get(str(i))
        if isinstance(value, (dict, list)):
            found[i] = json.dumps(value, ensure_ascii=False)
        elif isinstance(value, (str, int, float)) and not isinstance(value, bool):
            found[i] = str(value)
    return found


def auto_rows(texts: Sequence[str], *, answer_tokens: int,
              token_bucket: float | None = None) -> int:
    """Rows per request for "auto": fill PROMPT_BUDGET with average rows, at most
    MAX_ROWS, and keep one request under half the token bucket when it is known."""
    if not texts:
        return 1
    sample = texts[: min(len(texts), 2000)]
    per_row = sum(estimate_tokens(t) for t in sample) / len(sample) + ROW_OVERHEAD_TOKENS
    rows = int(PROMPT_BUDGET // per_row)
    if token_bucket:
        rows = min(rows, int(token_bucket / 2 // (per_row + answer_tokens)))
    return max(1, min(MAX_ROWS, rows))
