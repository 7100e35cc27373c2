"""`max_cost=`: the spend never passes the cap, also with 64 requests in flight; the run
stops cleanly with status "budget", keeps every answer, and a rerun asks for the rest."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

import pandas_llm_annotate as pla
from pandas_llm_annotate.display.snapshot import cost_text, snapshot
from pandas_llm_annotate.report.metrics import Metrics
from pandas_llm_annotate.simulator import serve

PRICE = (1000.0, 1000.0)  # USD per 1M tokens: a request costs a few cents here
TEXTS = pd.Series([f"budget message number {i} about a card" for i in range(400)])


@pytest.fixture
def slow_sim() -> Any:
    with serve(latency=0.05, jitter=0.3, seed=5) as sim:
        yield sim


def test_the_cap_holds_with_64_in_flight_and_a_rerun_asks_for_the_rest(
        slow_sim: Any, tmp_path: Any) -> None:
    opts = {"model": "m", "base_url": slow_sim.base_url, "cache": str(tmp_path),
            "progress": False, "max_concurrency": 64, "price": PRICE}
    out = TEXTS.llm.annotate(max_cost=5.0, **opts)
    rep = out.attrs["llm_report"]
    assert rep.status == "budget"
    assert rep.cost_usd is not None and 4.0 < rep.cost_usd <= 5.0
    assert rep.max_in_flight >= 16  # the cap held under concurrency
    answered = int(out.notna().sum())
    assert answered == rep.answered == rep.requests == slow_sim.stats()["requests"]
    assert rep.failed == 400 - answered
    assert "spent $" in rep.message and "would cost about $" in rep.message
    assert rep.failures["error"].str.startswith("not asked: the budget was reached").all()
    slow_sim.reset_stats()
    again = TEXTS.llm.annotate(max_cost=100.0, **opts)
    assert again.notna().all()
    assert slow_sim.stats()["requests"] == 400 - answered  # only the rest


def test_a_cap_without_a_known_price_says_to_pass_price(fresh_sim: Any,
                                                        opts: dict[str, Any]) -> None:
    with pytest.raises(pla.ConfigError, match=r"pass price=\(input, output\)"):
        TEXTS.llm.annotate(max_cost=1.0, **opts)
    assert fresh_sim.stats()["requests"] == 0


def test_a_tiny_cap_asks_nothing(fresh_sim: Any, opts: dict[str, Any]) -> None:
    out = TEXTS.llm.annotate(max_cost=1e-9, price=PRICE, **opts)
    assert out.isna().all() and fresh_sim.stats()["requests"] == 0
    rep = out.attrs["llm_report"]
    assert rep.status == "budget" and rep.failed == 400


def test_the_spend_is_shown_against_the_cap() -> None:
    m = Metrics(rows=10, model="m", price=PRICE, max_cost=0.5)
    m.prompt_tokens, m.completion_tokens = 100, 20
    assert cost_text(snapshot(m)) == "$0.1200 / $0.5000"
