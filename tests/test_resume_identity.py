"""Resume across processes when the local server comes back on another port: the cache
key names the model and a server identity, not the port (pipeline/identity.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from pandas_llm_annotate.pipeline.identity import server_identity

CHILD = textwrap.dedent("""
    import json, sys
    import pandas as pd
    import pandas_llm_annotate as pla
    from pandas_llm_annotate.simulator import serve

    n, cache = int(sys.argv[1]), sys.argv[2]
    texts = pd.Series([f"resume across ports, message {i}" for i in range(n)])
    with serve(latency=0.01) as sim:  # a free port: a new one in each process
        texts.llm.annotate(labels=["card", "loan", "other"], model="sim", cache=cache,
                           base_url=sim.base_url, progress=False)
        print(json.dumps({"port": sim.base_url, "requests": sim.stats()["requests"]}))
""")


def run_child(n: int, cache: Path) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", CHILD, str(n), str(cache)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.slow
def test_a_second_process_on_a_new_port_asks_only_for_the_rest(tmp_path: Path) -> None:
    first = run_child(60, tmp_path / "cache")
    second = run_child(100, tmp_path / "cache")
    assert first["port"] != second["port"]
    assert first["requests"] == 60
    assert second["requests"] == 40


@pytest.mark.parametrize(("url", "identity"), [
    ("http://127.0.0.1:5000/v1", "local"),
    ("http://127.0.0.2:81/v1", "local"),
    ("http://localhost:8000/v1", "local"),
    ("http://[::1]:9/v1", "local"),
    ("https://api.openai.com/v1", "api.openai.com"),
    ("https://API.openai.com:443/v1/", "api.openai.com"),
    ("http://user:secret@host.example:8080/v1", "host.example"),
])
def test_server_identity(url: str, identity: str) -> None:
    assert server_identity(url) == identity
    assert server_identity(url, "farm") == "namespace:farm"


def test_cache_namespace_names_the_server(fresh_sim: Any, opts: dict[str, Any]) -> None:
    texts = pd.Series(["one", "two", "three"])
    texts.llm.annotate(**opts)
    texts.llm.annotate(**opts, cache_namespace="my-farm")  # another name: asked again
    texts.llm.annotate(**opts, cache_namespace="my-farm")  # the same name: cached
    assert fresh_sim.stats()["requests"] == 6
