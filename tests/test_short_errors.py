"""Simple mistakes end a script with a short traceback and the message last; the cause
is kept on `error.cause` for debugging."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest
from helpers.child import ctrl_c, interruptible, start

import pandas_llm_annotate as pla

SCRIPTS = {
    "unreachable server": """
        pd.Series(["a", "b"]).llm.annotate(model="m", base_url="http://127.0.0.1:9/v1",
                                           progress=False, cache=False)
    """,
    "no model": """
        pd.Series(["a", "b"]).llm.annotate(progress=False, cache=False)
    """,
    "a label mistake": """
        pd.Series(["a", "b"]).llm.annotate(labels="yes", model="m", progress=False)
    """,
    "a mistyped option": """
        pd.Series(["a", "b"]).llm.annotate(model="m", max_concurency=4)
    """,
}


@pytest.mark.parametrize("mistake", list(SCRIPTS))
def test_a_simple_mistake_gives_a_short_traceback(mistake: str) -> None:
    script = "import pandas as pd\nimport pandas_llm_annotate\n" + textwrap.dedent(
        SCRIPTS[mistake])
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"})
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1
    assert len(lines) <= 12, done.stderr
    assert lines[-1].startswith("pandas_llm_annotate.errors.") or (
        lines[-1].startswith("(cause:") and lines[-2].startswith("pandas_llm_annotate.errors."))
    assert "no running event loop" not in done.stderr
    assert "asyncio" not in done.stderr and "nest_asyncio" not in done.stderr


def test_the_cause_is_kept_for_debugging() -> None:
    with pytest.raises(pla.ConnectError) as info:
        pd.Series(["a"]).llm.annotate(model="m", base_url="http://127.0.0.1:9/v1",
                                      progress=False, cache=False)
    assert info.value.cause is not None  # type: ignore[attr-defined]
    assert "ClientConnectorError" in type(info.value.cause).__name__  # type: ignore[attr-defined]


def test_ctrl_c_in_a_script_ends_with_one_clean_line(tmp_path: object) -> None:
    script = interruptible(f"""
        import pandas as pd
        import pandas_llm_annotate
        from pandas_llm_annotate.simulator import serve
        with serve(latency=0.5) as sim:
            print("started", flush=True)
            pd.Series([f"cc {{i}}" for i in range(300)]).llm.annotate(
                model="m", base_url=sim.base_url, cache={str(tmp_path)!r}, progress=False,
                max_concurrency=4)
    """)
    child = start(["-c", script])
    assert child.stdout is not None and child.stdout.readline().strip() == "started"
    started = time.monotonic()
    _, err, _ = ctrl_c(child, lambda: time.monotonic() - started > 1.5)
    lines = err.strip().splitlines()
    assert child.returncode != 0
    assert lines[-1].startswith("KeyboardInterrupt: annotate interrupted, "), err
    assert "rows saved in cache" in lines[-1]
    assert "no running event loop" not in err and "During handling" not in err
    assert len(lines) <= 14, err
