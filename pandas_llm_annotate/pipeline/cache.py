"""Exact answer cache in SQLite (WAL). Knows storage, not HTTP.

Keys are content hashes: `namespace_key(...)` hashes everything that changes an
answer except the text (model, base URL, system prompt, labels, parameters), and
`text_key(namespace, text)` adds the text. The API key is never part of it.

During a run, answers are written by a background thread in group commits, at most
`GROUP_S` apart (`CacheWriter`): the event loop never waits for the disk or a lock,
and a killed run loses at most the answers of that last moment. They are appended to
the `pending` table (no index: a commit writes a few pages, where inserting random
keys into the `answers` index dirtied about one page per answer, more as the file
grows), and merged into `answers` in one transaction when the run ends (or, after a run
was killed, when the next one starts). Reads see both tables. A cache that cannot
be written (disk full, a lock held too long, a read-only folder) stops being written:
the run goes on in memory and its report says so. A file that is not a database is
moved aside (`answers.sqlite.corrupt-<time>`), never deleted, and a new one started.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..errors import CacheError
from .cache_file import (
    START_MERGE_WAIT_S,
    connect,
    has_pending,
    has_table,
    merge_pending,
    move_aside,
    private_dirs,
    private_file,
    resolve_path,
)
from .cache_writer import CacheWriter

SCHEMA_VERSION = 1
INSERT = "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?)"
ADD_PENDING = "INSERT INTO pending VALUES (?, ?, ?, ?)"
ADD_USAGE = ("INSERT INTO usage VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(namespace) DO UPDATE SET"
             " requests = requests + excluded.requests,"
             " estimated_prompt = estimated_prompt + excluded.estimated_prompt,"
             " prompt = prompt + excluded.prompt, completion = completion + excluded.completion,"
             " latency = latency + excluded.latency, timed = timed + excluded.timed")
SCAN_FRACTION = 0.3  # get_many scans the table when asked for this share of its rows
HINT = "Pass cache=False to run without a cache, or cache='<another folder>'."


def namespace_key(**parts: Any) -> str:
    """Hash of everything but the text that changes the answer."""
    blob = json.dumps({"v": SCHEMA_VERSION, **parts}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def text_key(namespace: str, text: str) -> str:
    return hashlib.sha256(f"{namespace}\0{text}".encode("utf-8", "surrogatepass")).hexdigest()


def text_keys(namespace: str, texts: Iterable[str]) -> list[str]:
    """`text_key(namespace, t)` of each text, in one pass (a million texts in ~1 s)."""
    sha, prefix = hashlib.sha256, f"{namespace}\0"
    return [sha((prefix + t).encode("utf-8", "surrogatepass")).hexdigest() for t in texts]


class Cache:
    """A key → answer store. Use `Cache.open(path)`; close with `.close()`.

    `notice` says what went wrong with the file and what was done about it (moved
    aside, read-only, stopped writing), for the run's report; "" when nothing did."""

    def __init__(self, conn: sqlite3.Connection, path: Path, *, writable: bool = True,
                 notice: str = "") -> None:
        self._conn = conn
        self.path = path
        self.writable = writable
        self._notice = notice
        self._writer: CacheWriter | None = None
        self._pending = has_table(conn, "pending")  # an older read-only file has none

    def __repr__(self) -> str:
        return f"Cache({str(self.path)!r})"

    @classmethod
    def open(cls, path: str | Path | None = None) -> Cache:
        """Open (or create) the cache file; a `CacheError` says what to do when it cannot."""
        target = resolve_path(path)
        try:
            private_dirs(target.parent)
            writable = os.access(target.parent, os.W_OK) and (
                not target.exists() or os.access(target, os.W_OK))
            if writable:
                private_file(target)
            notice = "" if writable else (
                f"the cache {target} is read-only: answers are read from it, new ones are "
                "not saved")
            try:
                conn = connect(target, read_only=not writable)
            except sqlite3.DatabaseError as exc:
                if not writable or ("not a database" not in str(exc) and "malformed" not in str(
                        exc)):
                    raise
                aside = move_aside(target)
                notice = f"the cache {target} was not a database ({exc}): moved to {aside}"
                private_file(target)
                conn = connect(target, read_only=False)
        except (OSError, sqlite3.Error) as exc:
            raise CacheError(f"Cannot open the cache at {target}: {exc}. {HINT}") from exc
        return cls(conn, target, writable=writable, notice=notice)

    @property
    def notice(self) -> str:
        if self._writer is not None and self._writer.error is not None:
            return (f"the cache {self.path} stopped being written ({self._writer.error}); "
                    f"{self._writer.lost} answers of this run are not saved. {HINT}")
        return self._notice

    def get_many(self, keys: Sequence[str]) -> dict[str, str]:
        """The cached answers among `keys`, in `answers` and `pending` (a pending answer
        is the later one). `answers` is looked up in sorted batches of `IN (...)`, or,
        when the keys are many against its rows, read in one scan (a lookup costs about
        three rows of a scan). `pending` is read first: a merge by another process
        between the two reads moves rows into `answers`, never out of sight."""
        read: dict[str, str] = {}
        step = 900  # below SQLite's bound on host parameters
        try:
            later = self._pending_among(keys)
            top = self._conn.execute("SELECT max(rowid) FROM answers").fetchone()[0] or 0
            if len(keys) >= SCAN_FRACTION * top:
                read = dict(self._conn.execute("SELECT key, answer FROM answers"))
            else:
                ordered = sorted(keys)  # neighbours in the index: fewer pages read
                for i in range(0, len(ordered), step):
                    part = ordered[i : i + step]
                    marks = ",".join("?" * len(part))
                    rows = self._conn.execute(
                        f"SELECT key, answer FROM answers WHERE key IN ({marks})", part)
                    read.update(rows.fetchall())
        except sqlite3.Error as exc:
            raise CacheError(f"Cannot read the cache at {self.path}: {exc}. {HINT}") from exc
        read.update(later)
        # In the order of `keys`, one object per distinct answer (a label column has a
        # few): a million answer strings read in another order than the caller's made
        # the work after this (matching to rows, broadcasting) 2-3 times slower.
        same: dict[str, str] = {}
        return {k: same.setdefault(a, a) for k in keys if (a := read.get(k)) is not None}

    def merge_leftovers(self) -> None:
        """At a run's start: merge what a killed run left pending (if the write lock is
        free within `START_MERGE_WAIT_S`; else it stays pending, still read). Blocking:
        call it off the event loop."""
        if self.writable and self._pending:
            merge_pending(self._conn, wait_s=START_MERGE_WAIT_S)

    def _pending_among(self, keys: Sequence[str]) -> dict[str, str]:
        """The not yet merged answers among `keys` (a run going on in another process, or
        a read-only file a killed run left): one scan of a table that is usually empty."""
        if not self._pending or not has_pending(self._conn):
            return {}
        wanted = set(keys)
        rows = self._conn.execute("SELECT key, answer FROM pending ORDER BY rowid")
        return {k: a for k, a in rows if k in wanted}

    def put(self, key: str, answer: str, namespace: str) -> None:
        """Store one answer now (its own commit)."""
        self._conn.execute(INSERT, (key, answer, namespace, time.time()))

    def save(self, key: str, answer: str, namespace: str) -> None:
        """Store one answer soon (a background group commit, within `GROUP_S`); never
        blocks, never raises: a failure stops the writing and shows in `notice`."""
        if not self.writable:
            return
        if self._writer is None:
            self._writer = CacheWriter(self._conn, ADD_PENDING)
        self._writer.add((key, answer, namespace, time.time()))

    def flush(self) -> bool:
        """Wait until the answers saved so far are written; False when they are not."""
        if self._writer is None:
            return self.writable
        return self._writer.flush()

    def usage(self, namespace: str) -> tuple[int, float, int, int, float, int] | None:
        """(requests, estimated prompt, prompt, completion, latency, timed) summed over
        the answers with `usage` in this namespace (latency over the `timed` ones), or
        None when there are none."""
        try:
            row = self._conn.execute(
                "SELECT requests, estimated_prompt, prompt, completion, latency, timed"
                " FROM usage WHERE namespace = ?", (namespace,)).fetchone()
        except sqlite3.Error:  # an older or read-only file without the table
            return None
        return None if row is None or not row[0] else tuple(row)

    def add_usage(self, namespace: str, requests: int, estimated_prompt: float, prompt: int,
                  completion: int, latency: float, timed: int) -> None:
        """Add a run's usage sums (see `usage`); a cache that cannot be written skips it."""
        writer = self._writer
        if not self.writable or not requests or (
                writer is not None and (not writer.closed or writer.error is not None)):
            return
        with contextlib.suppress(sqlite3.Error):
            self._conn.execute(ADD_USAGE, (namespace, requests, estimated_prompt, prompt,
                                           completion, latency, timed))

    def put_many(self, items: Iterable[tuple[str, str]], namespace: str) -> None:
        now = time.time()
        self._conn.execute("BEGIN")
        try:
            self._conn.executemany(INSERT, ((k, a, namespace, now) for k, a in items))
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def __len__(self) -> int:
        if not self._pending:
            return int(self._conn.execute("SELECT count(*) FROM answers").fetchone()[0])
        return int(self._conn.execute(
            "SELECT count(*) FROM (SELECT key FROM answers UNION SELECT key FROM pending)"
        ).fetchone()[0])

    def close_writer(self) -> None:
        """Write what is queued (waiting at most `CacheWriter.CLOSE_S`), then merge it."""
        writer = self._writer
        if writer is not None and not writer.stopping:
            writer.close()
            if writer.closed and writer.written and writer.error is None:
                merge_pending(self._conn)  # after an error (a lock held too long): left

    def close(self) -> None:
        """Write what is queued, then close."""
        self.close_writer()
        if self._writer is None or self._writer.closed:
            self._conn.close()
