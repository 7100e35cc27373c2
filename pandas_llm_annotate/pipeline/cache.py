"""Exact answer cache in SQLite (WAL). Knows storage, not HTTP.

Keys are content hashes: `namespace_key(...)` hashes everything that changes an
answer except the text (model, base URL, system prompt, labels, parameters), and
`text_key(namespace, text)` adds the text. The API key is never part of it.

During a run, answers are written by a background thread in group commits, at most
`GROUP_S` apart (`CacheWriter`): the event loop never waits for the disk or a lock,
and a killed run loses at most the answers of that last moment. A cache that cannot
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
from .cache_writer import CacheWriter

SCHEMA_VERSION = 1
ENV_DIR = "LLM_ANNOTATE_CACHE_DIR"
SCHEMA = ("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, answer TEXT NOT NULL,"
          " namespace TEXT NOT NULL, created REAL NOT NULL)")
INSERT = "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?)"
USAGE = ("CREATE TABLE IF NOT EXISTS usage (namespace TEXT PRIMARY KEY, requests INTEGER NOT NULL,"
         " estimated_prompt REAL NOT NULL, prompt INTEGER NOT NULL, completion INTEGER NOT NULL,"
         " latency REAL NOT NULL, timed INTEGER NOT NULL DEFAULT 0)")
# `timed`: the answers `latency` sums over (a batch answer has usage but no latency of its own)
ADD_TIMED = "ALTER TABLE usage ADD COLUMN timed INTEGER NOT NULL DEFAULT 0"
ADD_USAGE = ("INSERT INTO usage VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(namespace) DO UPDATE SET"
             " requests = requests + excluded.requests,"
             " estimated_prompt = estimated_prompt + excluded.estimated_prompt,"
             " prompt = prompt + excluded.prompt, completion = completion + excluded.completion,"
             " latency = latency + excluded.latency, timed = timed + excluded.timed")
LOCK_WAIT_S = 30.0  # how long a write waits for a lock another process holds
SCAN_FRACTION = 0.3  # get_many scans the table when asked for this share of its rows
HINT = "Pass cache=False to run without a cache, or cache='<another folder>'."


def default_path() -> Path:
    """`$LLM_ANNOTATE_CACHE_DIR/answers.sqlite`, else the user cache dir."""
    env = os.environ.get(ENV_DIR)
    if env:
        return Path(env) / "answers.sqlite"
    import platformdirs

    return Path(platformdirs.user_cache_dir("pandas-llm-annotate")) / "answers.sqlite"


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


def resolve_path(path: str | Path | None) -> Path:
    """The cache file for a `cache=` setting: a file, or `answers.sqlite` in a folder."""
    target = Path(path) if path is not None else default_path()
    if target.is_dir() or (path is not None and target.suffix == ""):
        target = target / "answers.sqlite"
    return target


def _private_dirs(folder: Path) -> None:
    """Create `folder` and missing parents with mode 0700, whatever the umask."""
    missing = []
    for parent in (folder, *folder.parents):
        if parent.exists():
            break
        missing.append(parent)
    folder.mkdir(parents=True, exist_ok=True)
    for created in missing:
        with contextlib.suppress(OSError):
            os.chmod(created, 0o700)


def _private_file(target: Path) -> None:
    if not target.exists():
        os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o600))
    for name in (target, Path(f"{target}-wal"), Path(f"{target}-shm")):
        with contextlib.suppress(OSError):  # not ours, or read-only: reading still works
            if name.exists() and (name.stat().st_mode & 0o777) != 0o600:
                os.chmod(name, 0o600)


def _connect(target: Path, *, read_only: bool) -> sqlite3.Connection:
    if read_only:  # a complete cache on read-only storage: no -wal/-shm can be made
        uri = f"{target.resolve().as_uri()}?immutable=1"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    else:
        conn = sqlite3.connect(target, timeout=LOCK_WAIT_S, isolation_level=None,
                               check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(SCHEMA)
        conn.execute(USAGE)
        columns = {row[1] for row in conn.execute("PRAGMA table_info(usage)")}
        if "timed" not in columns:  # a file from before batch answers were counted
            conn.execute("BEGIN")
            conn.execute(ADD_TIMED)
            conn.execute("UPDATE usage SET timed = requests")
            conn.execute("COMMIT")
    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # "not a database"?
    return conn


def _move_aside(target: Path) -> Path:
    aside = target.with_name(f"{target.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
    for suffix in ("", "-wal", "-shm"):
        part = Path(f"{target}{suffix}")
        if part.exists():
            part.rename(Path(f"{aside}{suffix}"))
    return aside


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

    def __repr__(self) -> str:
        return f"Cache({str(self.path)!r})"

    @classmethod
    def open(cls, path: str | Path | None = None) -> Cache:
        """Open (or create) the cache file; a `CacheError` says what to do when it cannot."""
        target = resolve_path(path)
        try:
            _private_dirs(target.parent)
            writable = os.access(target.parent, os.W_OK) and (
                not target.exists() or os.access(target, os.W_OK))
            if writable:
                _private_file(target)
            notice = "" if writable else (
                f"the cache {target} is read-only: answers are read from it, new ones are "
                "not saved")
            try:
                conn = _connect(target, read_only=not writable)
            except sqlite3.DatabaseError as exc:
                if not writable or ("not a database" not in str(exc) and "malformed" not in str(
                        exc)):
                    raise
                aside = _move_aside(target)
                notice = f"the cache {target} was not a database ({exc}): moved to {aside}"
                _private_file(target)
                conn = _connect(target, read_only=False)
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
        """The cached answers among `keys`: looked up in sorted batches of `IN (...)`, or,
        when they are many against the file's rows, one scan of the table (a lookup costs
        about three rows of a scan)."""
        found: dict[str, str] = {}
        step = 900  # below SQLite's bound on host parameters
        try:
            top = self._conn.execute("SELECT max(rowid) FROM answers").fetchone()[0] or 0
            if len(keys) >= SCAN_FRACTION * top:
                wanted = set(keys)
                rows = self._conn.execute("SELECT key, answer FROM answers")
                return {k: a for k, a in rows if k in wanted}
            ordered = sorted(keys)  # neighbours in the index: fewer pages read
            for i in range(0, len(ordered), step):
                part = ordered[i : i + step]
                marks = ",".join("?" * len(part))
                rows = self._conn.execute(
                    f"SELECT key, answer FROM answers WHERE key IN ({marks})", part)
                found.update(rows.fetchall())
        except sqlite3.Error as exc:
            raise CacheError(f"Cannot read the cache at {self.path}: {exc}. {HINT}") from exc
        return found

    def put(self, key: str, answer: str, namespace: str) -> None:
        """Store one answer now (its own commit)."""
        self._conn.execute(INSERT, (key, answer, namespace, time.time()))

    def save(self, key: str, answer: str, namespace: str) -> None:
        """Store one answer soon (a background group commit, within `GROUP_S`); never
        blocks, never raises: a failure stops the writing and shows in `notice`."""
        if not self.writable:
            return
        if self._writer is None:
            self._writer = CacheWriter(self._conn, INSERT)
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
        return int(self._conn.execute("SELECT count(*) FROM answers").fetchone()[0])

    def close_writer(self) -> None:
        """Write what is queued (waiting at most `CacheWriter.CLOSE_S`)."""
        if self._writer is not None and not self._writer.stopping:
            self._writer.close()

    def close(self) -> None:
        """Write what is queued, then close."""
        self.close_writer()
        if self._writer is None or self._writer.closed:
            self._conn.close()
