"""`max_cost=` with `batch=True`: each request's bound at the batch price is reserved
before the batch is sent, a batch is cut to what fits, the rest end NaN with status
"budget", answers settle what they really cost, and a rerun with a higher cap asks only
for the rest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from helpers.expected import sim_answer
from helpers.local_server import LocalServer

from pandas_llm_annotate.dispatch.budget import PROMPT_MARGIN, BatchHolds, Budget
from pandas_llm_annotate.simulator import SimulatorHandle, serve

LABELS = ["card_lost", "card_arrival", "refund", "other"]
TEXTS = [f"budget batch {i}: " + ["I lost my card", "my card arrival", "refund please"][i % 3]
         for i in range(200)]
PRICE = (1000.0, 1000.0)  # USD per 1M tokens (list): a request costs a few cents


def options(sim: SimulatorHandle, cache: Path, **extra: Any) -> dict[str, Any]:
    return {"labels": LABELS, "model": "m", "base_url": sim.base_url, "cache": str(cache),
            "progress": False, "batch": True, "batch_poll_s": 0.02, "price": PRICE, **extra}


def test_a_batch_is_cut_to_the_cap_and_a_rerun_asks_for_the_rest(tmp_path: Path) -> None:
    df = pd.DataFrame({"text": TEXTS})
    with serve(batch_delay=0.1) as sim:
        est = df.llm.estimate("text", **options(sim, tmp_path))
        assert est.batch and est.cost_usd_max is not None
        cap = est.cost_usd_max / 2  # the bounds (a margin on the prompt) fit fewer than half
        out = df.llm.annotate("text", **options(sim, tmp_path, max_cost=cap))
        rep, stats = out.attrs["llm_report"], sim.stats()
        assert rep.status == "budget"
        asked = stats["batch_requests"]
        assert 20 < asked < 100 and stats["batches"] == 1 and stats["requests"] == 0
        assert int(out.notna().sum()) == asked == rep.requests
        paid = (stats["prompt_tokens"] * PRICE[0] + stats["completion_tokens"] * PRICE[1]) / 1e6
        assert rep.cost_usd == pytest.approx(paid / 2)  # settled at the batch price
        assert rep.cost_usd <= cap
        assert "spent $" in rep.message and "would cost about $" in rep.message
        assert rep.failures["error"].str.startswith("not asked: the budget was reached").all()
        assert len(rep.failures) == len(TEXTS) - asked

        sim.reset_stats()
        again = df.llm.annotate("text", **options(sim, tmp_path, max_cost=100.0))
        assert again.attrs["llm_report"].status == "finished"
        assert again.tolist() == [sim_answer(t, labels=LABELS) for t in TEXTS]
        assert sim.stats()["batch_requests"] == len(TEXTS) - asked  # only the rest


def test_a_cap_below_one_request_submits_no_batch(tmp_path: Path) -> None:
    df = pd.DataFrame({"text": TEXTS[:10]})
    with serve(batch_delay=0.1) as sim:
        out = df.llm.annotate("text", **options(sim, tmp_path, max_cost=1e-6))
        rep = out.attrs["llm_report"]
        assert out.isna().all() and rep.status == "budget" and rep.failed == 10
        assert sim.stats()["batches"] == 0 and sim.stats()["files"] == 0


def test_packed_batches_hold_the_cap_too(tmp_path: Path) -> None:
    df = pd.DataFrame({"text": TEXTS})
    with serve(batch_delay=0.1) as sim:
        opts = options(sim, tmp_path, rows_per_request=10)
        est = df.llm.estimate("text", **opts)
        assert est.requests == 20 and est.cost_usd_max is not None
        out = df.llm.annotate("text", **{**opts, "max_cost": est.cost_usd_max / 2})
        rep = out.attrs["llm_report"]
        assert rep.status == "budget" and rep.cost_usd <= est.cost_usd_max / 2
        assert 0 < sim.stats()["batch_requests"] < 20
        assert int(out.notna().sum()) == 10 * sim.stats()["batch_requests"]


def test_batch_holds_reserve_cut_and_settle() -> None:
    holds = BatchHolds(Budget(cap=1.0, price=(1e6, 1e6)), factor=0.5)  # $1 per token
    assert holds.take("a", 0, 1)  # bound $0.50 at the batch price
    assert not holds.take("b", 0, 2) and holds.cut  # $1.00 more would pass the cap
    assert holds.take("c", 0, 1)  # $0.50: fits exactly
    holds.pay("a", {"prompt_tokens": 0, "completion_tokens": 1})  # cost $0.50
    holds.pay("c", None, answered=False)  # no answer: nothing spent
    assert holds.budget.spent == pytest.approx(0.5) and holds.budget.reserved == 0
    assert holds.take("e", 0, 1)
    holds.pay("e", {"unexpected": 1})  # answered without usage: its bound
    assert holds.budget.spent == pytest.approx(1.0) and holds.budget.holds == 0
    holds.take("d", 0, 4, sent=True)  # a batch already sent holds whatever it is
    assert holds.budget.reserved == pytest.approx(2.0)


def test_a_batch_never_sent_frees_its_reservation_for_the_online_fallback(
        tmp_path: Path) -> None:
    with LocalServer(lambda body: "refund") as server:  # no Batch API: the upload fails
        df = pd.DataFrame({"text": ["a", "b", "a"]})
        opts = {"labels": ["refund", "other"], "model": "m", "base_url": server.base_url,
                "cache": str(tmp_path), "progress": False, "price": PRICE}
        est = df.llm.estimate("text", **opts)  # online: the fallback's requests
        assert est.requests == 2
        bound = (est.prompt_tokens / 2 * PROMPT_MARGIN * PRICE[0]
                 + est.completion_tokens_max / 2 * PRICE[1]) / 1e6
        out = df.llm.annotate("text", batch=True, batch_fallback="online",
                              max_cost=1.5 * bound, **opts)  # one bound, then the next
        rep = out.attrs["llm_report"]
        assert out.tolist() == ["refund"] * 3 and rep.status == "finished"
        assert "rows asked online" in rep.message
