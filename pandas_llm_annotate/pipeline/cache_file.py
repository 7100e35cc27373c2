"""The cache file: where it lives (private to its user), opening it (tables created,
older files upgraded, what a killed run left merged) and setting aside one that is not
a database. `cache.Cache` reads and writes it."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from pathlib import Path

ENV_DIR = "LLM_ANNOTATE_CACHE_DIR"
SCHEMA = ("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, answer TEXT NOT NULL,"
          " namespace TEXT NOT NULL, created REAL NOT NULL)")
PENDING = ("CREATE TABLE IF NOT EXISTS pending (key TEXT NOT NULL, answer TEXT NOT NULL,"
           " namespace TEXT NOT NULL, created REAL NOT NULL)")
# In the order they were answered (a key answered twice keeps its last): the order the
# next run asks in, so its read of a million answers goes through memory in order. (Key
# order halves the merge's cost but left the rerun of 10,000,000 rows twice as slow.)
MERGE = ("INSERT OR REPLACE INTO answers SELECT key, answer, namespace, created FROM pending"
         " ORDER BY rowid")
USAGE = ("CREATE TABLE IF NOT EXISTS usage (namespace TEXT PRIMARY KEY, requests INTEGER NOT NULL,"
         " estimated_prompt REAL NOT NULL, prompt INTEGER NOT NULL, completion INTEGER NOT NULL,"
         " latency REAL NOT NULL, timed INTEGER NOT NULL DEFAULT 0)")
# `timed`: the answers `latency` sums over (a batch answer has usage but no latency of its own)
ADD_TIMED = "ALTER TABLE usage ADD COLUMN timed INTEGER NOT NULL DEFAULT 0"
LOCK_WAIT_S = 30.0  # how long a write waits for a lock another process holds
START_MERGE_WAIT_S = 0.2  # a run's start merges what is pending only if the lock is free by then


def default_path() -> Path:
    """`$LLM_ANNOTATE_CACHE_DIR/answers.sqlite`, else the user cache dir."""
    env = os.environ.get(ENV_DIR)
    if env:
        return Path(env) / "answers.sqlite"
    import platformdirs

    return Path(platformdirs.user_cache_dir("pandas-llm-annotate")) / "answers.sqlite"


def resolve_path(path: str | Path | None) -> Path:
    """The cache file for a `cache=` setting: a file, or `answers.sqlite` in a folder."""
    target = Path(path) if path is not None else default_path()
    if target.is_dir() or (path is not None and target.suffix == ""):
        target = target / "answers.sqlite"
    return target


def private_dirs(folder: Path) -> None:
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


def private_file(target: Path) -> None:
    if not target.exists():
        os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o600))
    for name in (target, Path(f"{target}-wal"), Path(f"{target}-shm")):
        with contextlib.suppress(OSError):  # not ours, or read-only: reading still works
            if name.exists() and (name.stat().st_mode & 0o777) != 0o600:
                os.chmod(name, 0o600)


def connect(target: Path, *, read_only: bool) -> sqlite3.Connection:
    if read_only:  # a complete cache on read-only storage: no -wal/-shm can be made
        uri = f"{target.resolve().as_uri()}?immutable=1"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    else:
        conn = sqlite3.connect(target, timeout=LOCK_WAIT_S, isolation_level=None,
                               check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(SCHEMA)
        conn.execute(PENDING)
        conn.execute(USAGE)
        columns = {row[1] for row in conn.execute("PRAGMA table_info(usage)")}
        if "timed" not in columns:  # a file from before batch answers were counted
            conn.execute("BEGIN")
            conn.execute(ADD_TIMED)
            conn.execute("UPDATE usage SET timed = requests")
            conn.execute("COMMIT")
    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # "not a database"?
    return conn


def merge_pending(conn: sqlite3.Connection, *, wait_s: float | None = None) -> bool:
    """Move the `pending` answers into `answers` in one transaction, waiting at most
    `wait_s` (default `LOCK_WAIT_S`) for the write lock, then fold the write-ahead log
    into the file (a big merge left in the log made the next reads of `answers` twice as
    slow). When it cannot, they stay pending: still read, merged at the next chance.
    True when something was merged."""
    try:
        if not has_pending(conn):
            return False
        wait = LOCK_WAIT_S if wait_s is None else wait_s
        conn.execute(f"PRAGMA busy_timeout = {int(wait * 1000)}")
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(MERGE)
            conn.execute("DELETE FROM pending")
            conn.execute("COMMIT")
        finally:
            if conn.in_transaction:  # a statement or the COMMIT itself failed
                conn.execute("ROLLBACK")
            conn.execute(f"PRAGMA busy_timeout = {int(LOCK_WAIT_S * 1000)}")
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    except sqlite3.Error:
        return False
    return True


def has_pending(conn: sqlite3.Connection) -> bool:
    """Whether any answer waits in `pending` (the table exists)."""
    return conn.execute("SELECT 1 FROM pending LIMIT 1").fetchone() is not None


def has_table(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                        (name,)).fetchone() is not None


def move_aside(target: Path) -> Path:
    aside = target.with_name(f"{target.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
    for suffix in ("", "-wal", "-shm"):
        part = Path(f"{target}{suffix}")
        if part.exists():
            part.rename(Path(f"{aside}{suffix}"))
    return aside
