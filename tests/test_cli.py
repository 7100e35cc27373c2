"""The command line, run as a user runs it (a subprocess) against the simulator on
127.0.0.1: files in and out, exit codes, messages, Ctrl-C and the rerun that resumes.
Checks of messages that need no real process call `main()` in this process."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from helpers.child import child_env
from helpers.expected import sim_answer

from pandas_llm_annotate import cli
from pandas_llm_annotate.simulator import SimulatorHandle, serve

LABELS = ["card_lost", "refund", "other"]
TEXTS = ["I lost my card", "where is my refund", "I lost my card", None, "NA", "hello there"]


def run_cli(*args: str | Path, cwd: Path, **popen: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pandas_llm_annotate", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, env=child_env(),
                          timeout=120, **popen)


def frame() -> pd.DataFrame:
    return pd.DataFrame({"id": ["007", "2", "3", "4", "5", "6"], "text": TEXTS})


def write(df: pd.DataFrame, path: Path) -> Path:
    name = path.name
    if ".csv" in name or ".tsv" in name:
        df.to_csv(path, index=False, sep="\t" if ".tsv" in name else ",")
    elif ".jsonl" in name:
        df.to_json(path, orient="records", lines=True)
    else:
        df.to_parquet(path, index=False)
    return path


def read(path: Path) -> pd.DataFrame:
    name = path.name
    if ".csv" in name or ".tsv" in name:
        return pd.read_csv(path, sep="\t" if ".tsv" in name else ",", dtype=str,
                           keep_default_na=False, na_values=[""])
    if ".jsonl" in name:
        return pd.read_json(path, lines=True, dtype=False)
    return pd.read_parquet(path)


def expected(texts: list[str | None]) -> list[str | None]:
    return [None if t is None else sim_answer(t, labels=LABELS) for t in texts]


def answers(series: pd.Series) -> list[str | None]:
    return [None if pd.isna(v) else str(v) for v in series]


def server(sim: SimulatorHandle) -> list[str]:
    return ["--model", "sim-model", "--base-url", sim.base_url]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- files in and out ---------------------------------------------------------------------


@pytest.mark.parametrize(("source", "target"), [
    ("data.csv", "out.parquet"), ("data.jsonl", "out.csv"), ("data.parquet", "out.jsonl"),
    ("data.tsv.gz", "out.tsv"),
])
def test_files_in_and_out(fresh_sim: SimulatorHandle, tmp_path: Path, source: str,
                          target: str) -> None:
    (tmp_path / "labels.txt").write_text("\n".join(LABELS) + "\n\n")
    write(frame(), tmp_path / source)
    done = run_cli("annotate", source, "--column", "text", "--labels", "labels.txt",
                   "-o", target, "--cache", "cache", *server(fresh_sim), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = read(tmp_path / target)
    assert list(out.columns) == ["id", "text", "text_llm"]
    assert answers(out["text_llm"]) == expected(TEXTS)
    assert answers(out["text"]) == TEXTS  # the "NA" text is a text, not a missing cell
    assert fresh_sim.stats()["requests"] == 4  # each distinct text once
    if ".csv" in source and ".csv" in target:
        assert out["id"][0] == "007"
    err = done.stderr
    assert err.count("annotate finished in") == 1 and err.count("requests ·") == 1, err
    assert f"wrote {target}: 6 rows, the answers in column 'text_llm'" in err
    assert "Traceback" not in err and done.stdout == ""


def test_labels_as_a_list_a_prompt_file_and_an_output_column(
        fresh_sim: SimulatorHandle, tmp_path: Path) -> None:
    write(frame(), tmp_path / "data.csv")
    (tmp_path / "prompt.txt").write_text("Which banking intent is this?\n")
    done = run_cli("annotate", "data.csv", "-c", "text", "-l", ",".join(LABELS),
                   "--prompt-file", "prompt.txt", "--output-column", "intent", "-o", "out.csv",
                   "--no-cache", "--no-progress", *server(fresh_sim), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = read(tmp_path / "out.csv")
    assert answers(out["intent"]) == [
        None if t is None else sim_answer(t, "Which banking intent is this?", LABELS)
        for t in TEXTS]
    assert "annotate finished" not in done.stderr  # --no-progress: only the file line
    assert done.stderr.strip() == "wrote out.csv: 6 rows, the answers in column 'intent'"


# --- exit codes and messages ----------------------------------------------------------------


def test_a_wrong_column_is_one_line_and_exit_2(fresh_sim: SimulatorHandle, tmp_path: Path) -> None:
    write(frame(), tmp_path / "data.csv")
    done = run_cli("annotate", "data.csv", "--column", "txt", "-l", "a,b", "-o", "out.csv",
                   *server(fresh_sim), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("error: No column 'txt' in data.csv. Did you mean 'text'?")
    assert len(done.stderr.strip().splitlines()) == 1
    assert fresh_sim.stats()["requests"] == 0 and not (tmp_path / "out.csv").exists()


def usage_case(name: str, tmp: Path) -> tuple[list[str], str]:
    """(arguments, start of the message) of a usage error."""
    data, base = str(tmp / "data.csv"), ["-c", "text", "-l", "a,b"]
    cases = {
        "no model": ([data, *base, "-o", "o.csv", "--base-url", "http://127.0.0.1:9/v1"],
                     "No model: pass --model NAME or set $LLM_ANNOTATE_MODEL"),
        "no key": ([data, *base, "-o", "o.csv", "--model", "m"],
                   "No API key for api.openai.com: set $OPENAI_API_KEY"),
        "no input": ([str(tmp / "nope.csv"), *base, "-o", "o.csv"], "No such file:"),
        "format": ([data, *base, "-o", "o.xlsx"], "Unknown format of o.xlsx"),
        "folder": ([data, *base, "-o", str(tmp / "no" / "o.csv")], "No folder"),
        "labels file": ([data, "-c", "text", "-l", "labels.tx", "-o", "o.csv"],
                        "--labels 'labels.tx': no such file"),
        "labels": ([data, "-c", "text", "-l", "a,A", "-o", "o.csv"], "labels"),
        "taken": ([data, *base, "-o", "o.csv", "--output-column", "id"],
                  "already has a column 'id'"),
        "setting": ([data, *base, "-o", "o.csv", "--max-concurrency", "0"],
                    "max_concurrency must be at least 1"),
        "bad csv": ([str(tmp / "bad.csv"), *base, "-o", "o.csv"], "Cannot read"),
    }
    return cases[name]


@pytest.mark.parametrize("name", ["no model", "no key", "no input", "format", "folder",
                                  "labels file", "labels", "taken", "setting", "bad csv"])
def test_usage_errors_exit_2_before_any_request(
        name: str, fresh_sim: SimulatorHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    write(frame(), tmp_path / "data.csv")
    (tmp_path / "bad.csv").write_bytes(b"text\n\xff\xfe\x00garbage\n")
    monkeypatch.chdir(tmp_path)
    argv, message = usage_case(name, tmp_path)
    if name not in ("no model", "no key"):
        argv += server(fresh_sim)
    assert cli.main(["annotate", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err, err
    assert len(err.strip().splitlines()) == 1
    assert fresh_sim.stats()["requests"] == 0
    assert not (tmp_path / "o.csv").exists()


def test_an_unreachable_server_exits_1_with_the_reason_once(tmp_path: Path) -> None:
    write(frame(), tmp_path / "data.csv")
    url = f"http://127.0.0.1:{closed_port()}/v1"
    done = run_cli("annotate", "data.csv", "-c", "text", "-l", "a,b", "-o", "out.csv",
                   "--model", "m", "--base-url", url, "--no-cache", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    err = done.stderr
    assert "Traceback" not in err
    assert err.count("annotate failed in") == 1
    assert " ".join(err.split()).count("Cannot reach") == 1, err  # in the block, not again
    assert not (tmp_path / "out.csv").exists()


def test_without_progress_a_failed_run_says_error(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    write(frame(), tmp_path / "data.csv")
    url = f"http://127.0.0.1:{closed_port()}/v1"
    code = cli.main(["annotate", str(tmp_path / "data.csv"), "-c", "text", "-l", "a,b", "-o",
                     str(tmp_path / "out.csv"), "--model", "m", "--base-url", url,
                     "--no-cache", "--no-progress"])
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: Cannot reach") and len(err.strip().splitlines()) == 1


def test_rows_without_an_answer_are_a_warning_and_exit_0(tmp_path: Path) -> None:
    texts = [f"message {i}" for i in range(40)]
    write(pd.DataFrame({"text": texts}), tmp_path / "data.csv")
    with serve(latency=0.01, faults=0.3, fault_kinds=["error"], seed=5) as sim:
        done = run_cli("annotate", "data.csv", "-c", "text", "-l", ",".join(LABELS), "-o",
                       "out.jsonl", "--max-retries", "0", "--no-cache", *server(sim),
                       cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = read(tmp_path / "out.jsonl")
    missing = int(out["text_llm"].isna().sum())
    assert 0 < missing < len(texts)
    assert f"warning: {missing} of 40 rows got no answer" in done.stderr
    assert done.stderr.count("\n  row ") == min(missing, cli.FAILURES_SHOWN)


def test_an_output_that_cannot_be_written_exits_1_and_leaves_no_partial_file(
        opts: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data.jsonl"
    data.write_text('{"text": "a card", "n": 1}\n{"text": "a refund", "n": "x"}\n')
    code = cli.main(["annotate", str(data), "-c", "text", "-l", "a,b", "-o",
                     str(tmp_path / "out.parquet"), "--model", "m", "--base-url",
                     opts["base_url"], "--cache", opts["cache"], "--no-progress"])
    assert code == 1
    err = capsys.readouterr().err
    assert "Cannot write" in err and "as Parquet" in err and "--output" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "data.jsonl"]


def test_parquet_without_pyarrow_says_what_to_install(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        fresh_sim: SimulatorHandle) -> None:
    write(frame(), tmp_path / "data.csv")
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import fails
    monkeypatch.setitem(sys.modules, "fastparquet", None)
    code = cli.main(["annotate", str(tmp_path / "data.csv"), "-c", "text", "-l", "a,b", "-o",
                     str(tmp_path / "out.parquet"), *server(fresh_sim)])
    assert code == 2
    assert "needs pyarrow: pip install pyarrow" in capsys.readouterr().err
    assert fresh_sim.stats()["requests"] == 0


# --- Ctrl-C and the rerun --------------------------------------------------------------------

DISTINCT = 120
CONCURRENCY = 4


@pytest.fixture(scope="module")
def slow_sim() -> Iterator[SimulatorHandle]:
    with serve(latency=0.2, jitter=0.1, seed=11) as handle:
        yield handle


def wait_until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.mark.slow
def test_ctrl_c_exits_130_and_the_same_command_asks_only_for_the_rest(
        slow_sim: SimulatorHandle, tmp_path: Path) -> None:
    texts = [f"resume {i}: " + ["I lost my card", "my refund"][i % 2] for i in range(DISTINCT)]
    write(pd.DataFrame({"text": texts + texts[:30]}), tmp_path / "data.csv")
    command = [sys.executable, "-m", "pandas_llm_annotate", "annotate", "data.csv", "-c", "text",
               "-l", ",".join(LABELS), "-o", "out.parquet", "--cache", "cache",
               "--max-concurrency", str(CONCURRENCY), *server(slow_sim)]
    wait_until(lambda: slow_sim.stats()["in_flight"] == 0, 15, "an idle server")
    slow_sim.reset_stats()
    child = subprocess.Popen(  # a shell's Ctrl-C reaches a foreground job with SIGINT on
        command, cwd=tmp_path, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        wait_until(lambda: slow_sim.stats()["ok"] >= 20, 60, "20 answers")
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=30)
    finally:
        child.kill()
    assert child.returncode == 130, err
    assert "Traceback" not in err
    assert err.count("annotate interrupted in") == 1
    assert "the same command asks only for the rest" in err
    assert not (tmp_path / "out.parquet").exists()
    wait_until(lambda: slow_sim.stats()["in_flight"] == 0, 15, "an idle server")
    first = set(slow_sim.stats()["texts"])
    assert 20 <= len(first) < DISTINCT
    slow_sim.reset_stats()

    done = subprocess.run(command, cwd=tmp_path, env=child_env(), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    second = slow_sim.stats()
    assert set(second["texts"].values()) == {1}  # nothing asked twice in the rerun
    assert len(set(second["texts"]) & first) <= CONCURRENCY  # only those in flight at Ctrl-C
    assert set(second["texts"]) | first == set(texts)
    out = read(tmp_path / "out.parquet")
    assert answers(out["text_llm"]) == expected(texts + texts[:30])


def test_estimate_prints_the_bill_and_asks_nothing(fresh_sim: SimulatorHandle,
                                                   tmp_path: Path) -> None:
    source = write(frame(), tmp_path / "data.csv")
    done = run_cli("annotate", source, "-c", "text", "--labels", "a,b", "-o", "out.csv",
                   "--estimate", "--price", "1", "2", "--cache", "cache", *server(fresh_sim),
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["requests"] == 4 and found["distinct"] == 4 and found["cost_usd"] > 0
    assert fresh_sim.stats()["requests"] == 0 and not (tmp_path / "out.csv").exists()
