"""What writing answers to the cache costs the writer thread, per answer.

    python benchmarks/cache_write.py [--rows 20000] [--group 105]

The writer alone (no event loop beside it), in groups of `--group` rows (what 10 ms holds
at ~10,000 answers/s), into a fresh file and into one that already holds 200,000
answers. "into the index": each group's rows inserted straight into `answers` (random
keys: about one page of the index dirtied per answer, more as the file grows), as runs
did before 2026-12-03; "appended, merged at the end": the package's way now, the groups
appended to `pending` (no index), then one merge into `answers` in the order answered. CPU time
of this thread (`time.thread_time`), best of 3.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks.*` importable
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from benchmarks.results import publish
from pandas_llm_annotate.pipeline.cache import ADD_PENDING, INSERT
from pandas_llm_annotate.pipeline.cache_file import connect, merge_pending
from pandas_llm_annotate.pipeline.cache_writer import CacheWriter

NAMESPACE = hashlib.sha256(b"namespace").hexdigest()


def rows_of(start: int, n: int) -> list[tuple[Any, ...]]:
    return [(hashlib.sha256(str(i).encode()).hexdigest(), '{"label": "card_arrival"}',
             NAMESPACE, time.time()) for i in range(start, start + n)]


def one(rows: int, group: int, before: int, *, pending: bool) -> tuple[float, float]:
    """(write µs/answer, merge µs/answer) of the writer's SQL for one fresh file."""
    with tempfile.TemporaryDirectory() as tmp:
        conn = connect(Path(tmp) / "answers.sqlite", read_only=False)
        if before:
            conn.execute("BEGIN")
            conn.executemany(INSERT, rows_of(-before, before))
            conn.execute("COMMIT")
        writer = CacheWriter(conn, ADD_PENDING if pending else INSERT)
        writer.close()  # its thread is not used: the groups are written here, timed
        todo = rows_of(0, rows)
        start = time.thread_time()
        for at in range(0, rows, group):
            writer._write_rows(todo[at : at + group])
        written = time.thread_time()
        merge_pending(conn)
        merged = time.thread_time()
        assert conn.execute("SELECT count(*) FROM answers").fetchone()[0] == before + rows
        conn.close()
    return (written - start) / rows * 1e6, (merged - written) / rows * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--group", type=int, default=105)
    args = parser.parse_args(argv)
    results = []
    for before in (0, 200_000):
        for pending in (False, True):
            best = min((one(args.rows, args.group, before, pending=pending) for _ in range(3)),
                       key=sum)
            results.append({"before": before, "pending": pending,
                            "write_us": round(best[0], 2), "merge_us": round(best[1], 2)})
    lines = [f"## cache writes: {args.rows:,} answers in groups of {args.group}, writer CPU "
             "per answer (best of 3)", "",
             "| file holds | way | write µs/answer | merge µs/answer | total | × into the index |",
             "|---|---|---|---|---|---|"]
    for r in results:
        total = r["write_us"] + r["merge_us"]
        direct = next(x for x in results if x["before"] == r["before"] and not x["pending"])
        way = "appended, merged at the end" if r["pending"] else "into the index"
        lines.append(f"| {r['before']:,} answers | {way} | {r['write_us']:.1f} | "
                     f"{r['merge_us']:.1f} | {total:.1f} | {total / direct['write_us']:.2f} |")
    lines += ["", f"- machine: {os.cpu_count()} cores; 1-min load average "
              f"{os.getloadavg()[0]:.1f} at the end."]
    publish("cache_write", "\n".join(lines) + "\n",
            {"rows": args.rows, "group": args.group, "results": results,
             "load": round(os.getloadavg()[0], 1)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
