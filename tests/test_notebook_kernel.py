"""Sync `df.llm.annotate` in a real Jupyter kernel, whose event loop is already running."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = [pytest.mark.notebook, pytest.mark.slow]

LABELS = ["card_lost", "card_arrival", "refund", "other"]
TEXTS = ["I lost my card", "when is my card arrival", "refund my money please",
         "I lost my card", None, "hello there"]

CELLS = [
    """
    import asyncio, json, sys
    import pandas as pd
    import pandas_llm_annotate as pla
    from pandas_llm_annotate.simulator import serve
    try:
        asyncio.get_running_loop()
        print("LOOP_RUNNING True")
    except RuntimeError:
        print("LOOP_RUNNING False")
    print("PYTHON", sys.executable)
    """,
    """
    sim = serve(latency=0.02)
    pla.configure(model="sim-model", base_url=sim.base_url, cache=CACHE, progress=False)
    df = pd.DataFrame({"text": TEXTS})
    df["label"] = df.llm.annotate("text", labels=LABELS)
    print("RESULT", json.dumps(df["label"].where(df["label"].notna(), None).tolist()))
    rep = pla.last_report()
    print("REPORT", json.dumps({"status": rep.status, "requests": rep.requests,
                                "missing": rep.missing}))
    """,
    """
    again = df.llm.annotate("text", labels=LABELS)
    print("RERUN", pla.last_report().requests, again.equals(df["label"]))
    print("SERVER", sim.stats()["requests"])
    sim.close()
    """,
]


def kernel_spec(root: Path) -> str:
    """A kernelspec under `root/kernels` that runs this interpreter (the dev venv)."""
    name = "pla-test-python"
    spec_dir = root / "kernels" / name
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "pandas-llm-annotate tests",
        "language": "python",
    }))
    return name


def test_sync_annotate_in_a_real_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("ipykernel", reason="ipykernel is not installed (pip install -e .[dev])")
    nbclient = pytest.importorskip("nbclient",
                                   reason="nbclient is not installed (pip install -e .[dev])")
    nbformat = pytest.importorskip("nbformat",
                                   reason="nbformat is not installed (pip install -e .[dev])")
    from helpers.expected import sim_answer

    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    name = kernel_spec(tmp_path / "jupyter")

    setup = f"CACHE = {str(tmp_path / 'cache')!r}\nTEXTS = {TEXTS!r}\nLABELS = {LABELS!r}\n"
    cells = [nbformat.v4.new_code_cell(setup)]
    cells += [nbformat.v4.new_code_cell(textwrap.dedent(src).strip()) for src in CELLS]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": name, "display_name": name, "language": "python"}

    client = nbclient.NotebookClient(nb, kernel_name=name, timeout=120,
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()

    lines: list[str] = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            assert output["output_type"] != "error", output
            if output["output_type"] == "stream" and output["name"] == "stdout":
                lines += output["text"].splitlines()
    found = {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in lines if " " in line}

    assert found["PYTHON"] == sys.executable  # the kernel runs the dev venv
    assert found["LOOP_RUNNING"] == "True"  # so annotate really ran inside a running loop
    expected = [None if t is None else sim_answer(t, labels=LABELS) for t in TEXTS]
    assert json.loads(found["RESULT"]) == expected
    assert json.loads(found["REPORT"]) == {"status": "finished", "requests": 4, "missing": 1}
    assert found["RERUN"] == "0 True"
    assert found["SERVER"] == "4"
