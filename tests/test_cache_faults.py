"""A cache that cannot be read or written never costs the answers of a run.

Real faults: a file that is not a database, a full disk and a read-only folder (small
tmpfs mounts; they need root, else those tests skip), a lock another connection holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import pandas_llm_annotate as pla
from pandas_llm_annotate.pipeline import cache as cache_mod
from pandas_llm_annotate.pipeline import cache_file
from pandas_llm_annotate.simulator import SimulatorHandle

# Answers in the cache: merged ones and those a run appended and has not merged yet.
CACHED_ROWS = "SELECT count(*) FROM (SELECT key FROM answers UNION SELECT key FROM pending)"


def texts(n: int, prefix: str = "cache fault") -> pd.Series:
    return pd.Series([f"{prefix} message number {i} " + "x" * 40 for i in range(n)])


def cached_rows(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return int(conn.execute(CACHED_ROWS).fetchone()[0])


@contextlib.contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip()}): needs root")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_file_that_is_not_a_database_is_moved_aside(opts: dict[str, Any],
                                                        tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "answers.sqlite").write_bytes(b"this is not sqlite " * 100)
    out = texts(20).llm.annotate(**{**opts, "cache": str(folder)})
    assert out.notna().all()
    aside = list(folder.glob("answers.sqlite.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not sqlite")
    rep = pla.last_report()
    assert rep is not None and rep.status == "finished"
    assert "not a database" in rep.message and "moved to" in rep.message
    assert cached_rows(folder / "answers.sqlite") == 20


def test_a_full_disk_stops_the_cache_not_the_run(opts: dict[str, Any], tmp_path: Path) -> None:
    with tmpfs(tmp_path / "small", "160k") as folder:
        out = texts(3000).llm.annotate(**{**opts, "cache": str(folder), "max_concurrency": 64})
        assert out.notna().all()  # every answer of the run is returned
        rep = pla.last_report()
        assert rep is not None and rep.status == "finished"
        assert "stopped being written" in rep.message and "full" in rep.message
        assert 0 < cached_rows(folder / "answers.sqlite") < 3000


def test_a_complete_cache_on_read_only_storage_is_read(fresh_sim: SimulatorHandle,
                                                       opts: dict[str, Any],
                                                       tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", "4m") as folder:
        texts(30).llm.annotate(**{**opts, "cache": str(folder)})
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        fresh_sim.reset_stats()
        out = texts(30).llm.annotate(**{**opts, "cache": str(folder)})
        assert out.notna().all()
        assert fresh_sim.stats()["requests"] == 0
        rep = pla.last_report()
        assert rep is not None and rep.cache_hits == 30 and rep.status == "finished"
        more = texts(5, "new").llm.annotate(**{**opts, "cache": str(folder)})
        assert more.notna().all()
        rep = pla.last_report()
        assert rep is not None and "read-only" in rep.message


def test_answers_a_killed_run_left_unmerged_are_read_from_read_only_storage(
        tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", "4m") as folder:
        path = folder / "answers.sqlite"
        cache = cache_mod.Cache.open(path)
        cache.save("k1", "a1", "ns")
        assert cache.flush()
        assert cache._writer is not None
        cache._writer.close()  # killed: committed to `pending`, never merged
        cache._conn.close()
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        ro = cache_mod.Cache.open(path)
        assert not ro.writable
        assert ro.get_many(["k1", "k2"]) == {"k1": "a1"}
        ro.close()


def hold_lock(path: Path, seconds: float, ready: threading.Event) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    ready.set()
    time.sleep(seconds)
    conn.execute("COMMIT")
    conn.close()


def run_with_heartbeat(series: pd.Series, options: dict[str, Any]) -> tuple[pd.Series, float]:
    """Run `aannotate` beside a ticker; the longest gap between ticks (loop blocked)."""
    async def main() -> tuple[pd.Series, float]:
        gaps = [0.0]
        stop = asyncio.Event()

        async def tick() -> None:
            last = time.perf_counter()
            while not stop.is_set():
                await asyncio.sleep(0.02)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        ticker = asyncio.ensure_future(tick())
        try:
            out = await series.llm.aannotate(**options)
        finally:
            stop.set()
            await ticker
        return out, max(gaps)

    return asyncio.run(main())


def test_a_lock_held_elsewhere_never_blocks_the_event_loop(opts: dict[str, Any],
                                                           tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    texts(1).llm.annotate(**{**opts, "cache": str(folder)})  # create the file
    ready = threading.Event()
    holder = threading.Thread(target=hold_lock, args=(folder / "answers.sqlite", 2.0, ready))
    holder.start()
    ready.wait()
    out, longest = run_with_heartbeat(texts(100, "during lock"), {**opts, "cache": str(folder)})
    holder.join()
    assert out.notna().all()
    assert longest < 0.5, f"the event loop was blocked for {longest:.2f} s"
    assert cached_rows(folder / "answers.sqlite") == 101  # written once the lock went


def test_a_lock_held_too_long_stops_the_cache_not_the_run(opts: dict[str, Any], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache_file, "LOCK_WAIT_S", 0.5)
    folder = tmp_path / "locked"
    texts(1).llm.annotate(**{**opts, "cache": str(folder)})
    ready = threading.Event()
    holder = threading.Thread(target=hold_lock, args=(folder / "answers.sqlite", 3.0, ready))
    holder.start()
    ready.wait()
    out = texts(50, "long lock").llm.annotate(**{**opts, "cache": str(folder)})
    holder.join()
    assert out.notna().all()
    rep = pla.last_report()
    assert rep is not None and rep.status == "finished"
    assert "stopped being written" in rep.message and "locked" in rep.message


def test_a_cache_that_cannot_be_opened_is_a_cache_error(opts: dict[str, Any],
                                                        tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    with pytest.raises(pla.CacheError, match="cache=False") as info:
        texts(3).llm.annotate(**{**opts, "cache": str(blocker / "sub")})
    assert str(blocker) in str(info.value)
    rep = pla.last_report()
    assert rep is not None and rep.status == "failed"  # never left "running"


def test_created_cache_folders_are_private_whatever_the_umask(opts: dict[str, Any],
                                                              tmp_path: Path) -> None:
    import os

    old = os.umask(0o022)
    try:
        texts(2).llm.annotate(**{**opts, "cache": str(tmp_path / "a" / "b")})
    finally:
        os.umask(old)
    for folder in (tmp_path / "a", tmp_path / "a" / "b"):
        assert folder.stat().st_mode & 0o777 == 0o700
