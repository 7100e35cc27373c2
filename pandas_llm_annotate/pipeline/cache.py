"""Exact answer cache in SQLite (WAL). Knows storage, not HTTP.

Keys are content hashes: `namespace_key(...)` hashes everything that changes an
answer except the text (model, base URL, system prompt, labels, parameters), and
`text_key(namespace, text)` adds the text. The API key is never part of it.
Each answer is committed as it arrives, so a killed run keeps what it paid for.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
ENV_DIR = "LLM_ANNOTATE_CACHE_DIR"


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


class Cache:
    """A key → answer store. Use `Cache.open(path)`; close with `.close()`."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path

    def __repr__(self) -> str:
        return f"Cache({str(self.path)!r})"

    @classmethod
    def open(cls, path: str | Path | None = None) -> Cache:
        target = Path(path) if path is not None else default_path()
        if target.is_dir() or (path is not None and target.suffix == ""):
            target = target / "answers.sqlite"
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            fd = os.open(target, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
        os.chmod(target, 0o600)
        conn = sqlite3.connect(target, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, answer TEXT NOT NULL,"
            " namespace TEXT NOT NULL, created REAL NOT NULL)"
        )
        for side in ("-wal", "-shm"):
            extra = Path(f"{target}{side}")
            if extra.exists():
                os.chmod(extra, 0o600)
        return cls(conn, target)

    def get_many(self, keys: Sequence[str]) -> dict[str, str]:
        """The cached answers among `keys`."""
        found: dict[str, str] = {}
        step = 900  # below SQLite's bound on host parameters
        for i in range(0, len(keys), step):
            part = keys[i : i + step]
            marks = ",".join("?" * len(part))
            rows = self._conn.execute(
                f"SELECT key, answer FROM answers WHERE key IN ({marks})", part
            )
            found.update(rows.fetchall())
        return found

    def put(self, key: str, answer: str, namespace: str) -> None:
        """Store one answer now (its own commit)."""
        self._conn.execute(
            "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?)",
            (key, answer, namespace, time.time()),
        )

    def put_many(self, items: Iterable[tuple[str, str]], namespace: str) -> None:
        now = time.time()
        self._conn.execute("BEGIN")
        try:
            self._conn.executemany(
                "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?)",
                ((k, a, namespace, now) for k, a in items),
            )
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def __len__(self) -> int:
        return int(self._conn.execute("SELECT count(*) FROM answers").fetchone()[0])

    def close(self) -> None:
        self._conn.close()
