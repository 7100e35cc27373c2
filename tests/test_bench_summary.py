"""`benchmarks/summary.py`: one table computed from the runs' JSON files, whatever is
missing or malformed in them (a fake results folder; no benchmark runs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.summary import main, summary

MACHINE = {"cores": 3, "cpu": "Test CPU 9000", "ram_gb": 7.5, "python": "3.11.0",
           "load_average": [0.5, 0.25, 0.125]}


def pla_row(name: str, wall: float | None, bound: float | None, **more: Any) -> dict[str, Any]:
    return {"contender": name, "status": "ok", "wall_s": wall, "bound_s": bound,
            "rate_limited": 0, "rows_lost": 0, "info": {"load_average_1min": 1.25}, **more}


def write(folder: Path, name: str, data: Any) -> None:
    (folder / f"{name}.json").write_text(json.dumps(data), encoding="utf-8")


def table_rows(text: str) -> dict[str, list[str]]:
    """The table's rows by their "compared" cell."""
    rows = [line.strip("|").split("|") for line in text.splitlines()
            if line.startswith("| ") and not line.startswith("| scenario")]
    return {cells[1].strip(): [c.strip() for c in cells] for cells in rows}


def fake_results(folder: Path) -> None:
    write(folder, "core", {"scenario": "core", "machine": MACHINE, "rows": [
        pla_row("bare aiohttp (reference)", 3.2, 2.8),
        pla_row("pla k=1 (fresh cache)", 3.36, 2.8, rate_limited=4, rows_lost=1),
        pla_row("pla rerun (same cache)", 0.2, None)]})
    write(folder, "faults", {"scenario": "faults", "rows": [
        pla_row("pla faults 0%", 2.0, 2.0), pla_row("pla faults 20%", 3.0, 2.0),
        {"contender": "pla faults 50%", "status": "failed: exit 1"}]})
    write(folder, "rpm", {"scenario": "rpm", "bounds": [{"label": "bound, deduped",
                                                         "seconds": 15.0}], "rows": [
        pla_row("openai+semaphore", 30.0, 25.0), pla_row("pla k=1", 16.5, 15.0),
        {"contender": "pla auto"}]})  # every field but the name missing
    rounds = [pla_row(f"pla off (round {r})", off, off) for r, off in ((1, 10.0), (2, 20.0),
                                                                        (3, 12.0))]
    rounds += [pla_row(f"pla on (round {r})", on, off, rate_limited=1)
               for r, on, off in ((1, 11.0, 10.0), (2, 30.0, 20.0), (3, 12.6, 12.0))]
    write(folder, "semantic-rpm", {"scenario": "semantic-rpm", "rows": rounds})
    write(folder, "memory", {"scenario": "memory", "rows": [pla_row(
        "end to end (1,000 rows)", 9.0, None,
        info={"client": {"rss": {"labelled": {"peak_mb": 512.5}}}})]})
    write(folder, "semantic", {"slowdown": {"rows": [
        {"semantic": "off", "wall s": 10.0, "429s": 0},
        {"semantic": "on (0.96)", "wall s": 10.5, "429s": 1},
        {"semantic": "off", "wall s": 12.0, "429s": 0},
        {"semantic": "on (0.96)", "wall s": 12.5, "429s": 2}]}})
    write(folder, "servers", {"one server (A)": {"rows_per_s": 2.0, "lost": 0},  # as before
                              "two servers (A, B)": {"rows_per_s": 3.5, "lost": 0}})
    write(folder, "dask_rpm", {"bound_s": 20.0, "runs": [
        {"contender": "pla dask", "wall_s": 21.0, "rate_limited": 3, "lost": 0}]})
    write(folder, "batch", {"runs": [{"run": "batch k=1", "billed_usd": 0.5,
                                      "est_usd": 0.4}],
                            "kill": {"batches_submitted_twice": 0, "rows": 10, "answered": 9}})
    write(folder, "estimate", {"rows": [
        {"server": "sim", "k": "1", "part": "first half, uncalibrated", "est_prompt": 110,
         "prompt": 100},
        {"server": "sim", "k": "1", "part": "second half, uncalibrated", "est_prompt": 1,
         "prompt": 100},  # the uncalibrated second half is not a line
        {"server": "sim", "k": "1", "part": "second half, calibrated", "est_prompt": 99,
         "prompt": 100}]})
    write(folder, "crash_window", {"in_flight": 64, "load": 1.5, "runs": [
        {"asked_again": 70, "lost": 0}, {"asked_again": 160, "lost": 1}]})
    (folder / "broken.json").write_text("{not json", encoding="utf-8")
    write(folder, "mystery", {"something": 1})


def test_every_ratio_is_computed_from_the_files(tmp_path: Path) -> None:
    fake_results(tmp_path)
    text = summary(tmp_path)
    rows = table_rows(text)
    core = rows["pla k=1 (fresh cache): wall s vs bare aiohttp (reference)"]
    assert core == ["core", core[1], "3.36", "3.20", "1.05", "4 / 1", "1.2"]
    assert rows["pla rerun (same cache): wall s vs no floor"][2:5] == ["0.2", "-", "-"]
    assert rows["pla faults 20%: wall s vs pla faults 0%"][2:5] == ["3.00", "2.00", "1.50"]
    assert rows["pla faults 50%"][2] == "failed: exit 1"
    assert rows["pla k=1: wall s vs bound, deduped"][2:5] == ["16.50", "15.00", "1.10"]
    assert rows["pla auto: wall s vs no floor"][2:6] == ["-", "-", "-", "- / -"]
    # rounds merged: medians of the walls (12.6, 12) and of the ratios (1.1, 1.5, 1.05)
    assert rows["pla on: wall s vs pla off (median of 3 rounds)"][2:6] == \
        ["12.60", "12.00", "1.10", "3 / 0"]
    # a row of this package need not say "pla": only the other clients' names are known
    assert rows["end to end (1,000 rows): peak RSS MB (no floor)"][2] == "512.50"
    assert rows["end to end (1,000 rows): wall s vs no floor"][2] == "9.00"
    assert rows["semantic on (0.96): median wall s vs off"][2:6] == \
        ["11.50", "11.00", "1.05", "3 / -"]
    assert rows["two servers (A, B): rows/s vs one server (A) (higher is better)"][4] == "1.75"
    assert rows["pla dask: wall s vs bound (distinct / rate)"][2:6] == \
        ["21.00", "20.00", "1.05", "3 / 0"]
    assert rows["batch k=1: billed $ vs the estimate"][4] == "1.25"
    assert rows["SIGKILL mid-batch, rerun: batches submitted twice (floor 0)"][5] == "- / 1"
    est = "sim k=1, {}: estimated vs actual prompt tokens"
    assert rows[est.format("first half, uncalibrated")][2:5] == ["110", "100", "1.10"]
    assert rows[est.format("second half, calibrated")][2:5] == ["99", "100", "0.99"]
    assert est.format("second half, uncalibrated") not in rows
    crash = rows["SIGKILL then rerun (2 kills): answers asked again, worst, vs requests in flight"]
    assert crash[2:] == ["160", "64", "2.50", "- / 1", "1.5"]
    # this package's rows only: neither a floor against itself nor another client
    assert not [k for k in rows if k.startswith(("openai", "bare", "pla faults 0%:"))]
    # the scenarios in the README's order, then the others
    order = [cells[0] for cells in rows.values()]
    assert order.index("core") < order.index("rpm") < order.index("memory") \
        < order.index("faults") < order.index("semantic") < order.index("batch")
    assert "3 cores, Test CPU 9000, 7.5 GB RAM, Python 3.11.0, load average 0.50, 0.25, " \
           "0.12" in text
    assert "- skipped broken.json: not readable JSON" in text
    assert "- skipped mystery.json: a layout this summary does not know" in text


def test_without_results_it_says_what_to_run(tmp_path: Path, capsys: Any) -> None:
    assert main(["--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "No results in" in out and "benchmarks/run.py" in out
    assert "the results do not record theirs" in out


def test_each_round_is_compared_with_its_own_bare_client(tmp_path: Path) -> None:
    """Rounds in turn (core, overhead): round N's run against round N's bare client, then
    the median of those ratios; never every round against the first bare client."""
    rows = []
    for r, bare, ours in ((1, 3.0, 3.3), (2, 4.0, 4.1), (3, 3.2, 3.36)):
        rows += [pla_row(f"bare aiohttp (bound) (round {r})", bare, bare),
                 pla_row(f"pla k=1 (round {r})", ours, bare)]
    write(tmp_path, "overhead", {"scenario": "overhead", "machine": MACHINE, "rows": rows})
    line = table_rows(summary(tmp_path))[
        "pla k=1: wall s vs bare aiohttp (bound) (median of 3 rounds)"]
    # ratios 1.10, 1.025, 1.05: median 1.05 (against round 1's client alone: 1.12)
    assert line[2:5] == ["3.36", "3.20", "1.05"]


def test_the_cache_writers_two_ways_are_compared_per_file_size(tmp_path: Path) -> None:
    write(tmp_path, "cache_write", {"load": 0.5, "results": [
        {"before": 0, "pending": False, "write_us": 8.0, "merge_us": 0.0},
        {"before": 0, "pending": True, "write_us": 1.0, "merge_us": 3.0},
        {"before": 200_000, "pending": False, "write_us": 20.0, "merge_us": 0.0},
        {"before": 200_000, "pending": True, "write_us": 1.0, "merge_us": 9.0}]})
    rows = table_rows(summary(tmp_path))
    way = "file with {}: writer µs per answer, appended + merged vs into the index"
    assert rows[way.format("0 answers")][2:5] == ["4.00", "8.00", "0.50"]
    assert rows[way.format("200,000 answers")][2:5] == ["10.00", "20.00", "0.50"]
