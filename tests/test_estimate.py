"""`df.llm.estimate(...)`: the bill before the run, without a request; close to what the
run then does, and closer once earlier answers calibrate it."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

import pandas_llm_annotate as pla
from pandas_llm_annotate.simulator import serve

LABELS = ["card", "loan", "transfer", "other"]


def frame(n: int = 200, distinct: int = 120) -> pd.DataFrame:
    return pd.DataFrame({"text": [f"please help me with request {i % distinct} about my "
                                  "account and the card I ordered last week" for i in range(n)]})


def test_estimate_sends_no_request_and_counts_like_the_run(fresh_sim: Any,
                                                           opts: dict[str, Any]) -> None:
    df = frame()
    est = df.llm.estimate("text", "Which intent?", labels=LABELS, **opts)
    assert fresh_sim.stats()["requests"] == 0
    assert isinstance(est, pla.Estimate)
    assert (est.rows, est.distinct, est.cached, est.requests) == (200, 120, 0, 120)
    df.llm.annotate("text", "Which intent?", labels=LABELS, **opts)
    rep = pla.last_report()
    assert rep is not None and rep.requests == est.requests
    assert est.prompt_tokens == pytest.approx(rep.prompt_tokens, rel=0.25)
    assert est.completion_tokens_max >= rep.completion_tokens
    again = df.llm.estimate("text", "Which intent?", labels=LABELS, **opts)
    assert (again.cached, again.requests, again.calibrated_from) == (120, 0, 120)
    assert fresh_sim.stats()["requests"] == 120  # estimates never asked


def test_estimate_calibrates_from_earlier_usage(fresh_sim: Any, opts: dict[str, Any]) -> None:
    first, second = frame(100, 100), pd.DataFrame({"text": frame(300, 300)["text"][100:]})
    first.llm.annotate("text", "Which intent?", labels=LABELS, **opts)
    est = second.llm.estimate("text", "Which intent?", labels=LABELS, **opts)
    assert est.calibrated_from == 100
    second.llm.annotate("text", "Which intent?", labels=LABELS, **opts)
    rep = pla.last_report()
    assert rep is not None
    assert est.prompt_tokens == pytest.approx(rep.prompt_tokens, rel=0.03)
    assert est.completion_tokens == pytest.approx(rep.completion_tokens, rel=0.10)


def test_estimate_with_packing_price_and_rate(fresh_sim: Any, opts: dict[str, Any]) -> None:
    est = frame().llm.estimate("text", labels=LABELS, rows_per_request=10, rpm=600,
                               price=(1.0, 2.0), **opts)
    assert est.requests == 12 and est.rows_per_request == 10
    assert est.wall_s == pytest.approx(12 / 600 * 60) and "requests/min" in est.wall_basis
    expected = (est.prompt_tokens * 1.0 + est.completion_tokens * 2.0) / 1e6
    assert est.cost_usd == pytest.approx(expected)
    assert est.batch_cost_usd == pytest.approx(expected / 2)
    assert est.to_dict()["cost_usd"] == pytest.approx(expected)
    assert "Estimate" in est._repr_html_() and "$" in repr(est)


def test_an_unknown_price_says_so_and_price_reaches_the_report(fresh_sim: Any,
                                                               opts: dict[str, Any]) -> None:
    est = frame(5, 5).llm.estimate("text", **opts)
    assert est.cost_usd is None and "price unknown" in repr(est)
    frame(5, 5).llm.annotate("text", price=(1.0, 1.0), **opts)
    rep = pla.last_report()
    assert rep is not None and rep.cost_usd == pytest.approx(
        (rep.prompt_tokens + rep.completion_tokens) / 1e6)


def test_wall_time_from_limits_learned_in_this_process(opts: dict[str, Any]) -> None:
    with serve(latency=0.01, rpm=1200) as sim:
        options = {**opts, "base_url": sim.base_url}
        unknown = frame(20, 20).llm.estimate("text", **options)
        assert unknown.wall_s is None
        frame(5, 5).llm.annotate("text", **options)  # headers teach the limits
        known = frame(400, 400).llm.estimate("text", **options)
        assert known.wall_s is not None and known.wall_s >= 395 / 1200 * 60 * 0.95
        assert sim.stats()["requests"] == 5


def test_bad_price_is_a_config_error() -> None:
    with pytest.raises(pla.ConfigError, match="price must be"):
        frame(2, 2).llm.estimate("text", model="m", base_url="http://127.0.0.1:9/v1",
                                 price=0.15)
