"""Batch API jobs kept in the cache file, so a restart, Ctrl-C or a crash loses none.

Table `batches`, one row per input file a run uploaded: the namespace (everything but
the text that makes an answer: model, server, prompt…), the server's URL (without
credentials), the model, the input file id, the batch id once the server created it,
its last status and request counts, the answer format of its bodies, and `jobs`
(JSON `{custom_id: [piece keys]}`: how each answer maps back). `collected` is set once
its answers are written to the cache. A batch not collected is open: the next run
over the same texts waits for it instead of submitting it again, `pla.batches()` lists
it, `pla.cancel_batches()` cancels it. The table has its own connection to the file
(WAL: it never waits for the answer writer's group commits). No API key is stored.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..dispatch.batch_store import BatchRecord, Job
from .cache_file import LOCK_WAIT_S

SCHEMA = ("CREATE TABLE IF NOT EXISTS batches (id TEXT PRIMARY KEY, namespace TEXT NOT NULL,"
          " base_url TEXT NOT NULL, model TEXT NOT NULL, input_file_id TEXT NOT NULL,"
          " batch_id TEXT, status TEXT NOT NULL, requests INTEGER NOT NULL,"
          " completed INTEGER NOT NULL, failed INTEGER NOT NULL, form TEXT NOT NULL,"
          " jobs TEXT NOT NULL, created REAL NOT NULL, updated REAL NOT NULL,"
          " collected INTEGER NOT NULL)")
COLUMNS = ["batch_id", "status", "requests", "completed", "failed", "model", "base_url",
           "created", "input_file_id"]


def public_url(url: str) -> str:
    """`url` without user name or password."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


@dataclass(frozen=True)
class OpenBatch:
    """A row of `pla.batches()`."""

    record: BatchRecord
    namespace: str
    base_url: str
    model: str
    requests: int
    completed: int
    failed: int


class BatchState:
    """The `batches` table of one cache file (`path` None: in memory, for cache=False)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    @classmethod
    def open(cls, path: Path | None) -> BatchState:
        conn = sqlite3.connect(":memory:" if path is None else path, timeout=LOCK_WAIT_S,
                               isolation_level=None, check_same_thread=False)
        with contextlib.suppress(sqlite3.OperationalError):  # read-only: reads still work
            conn.execute(SCHEMA)
        return cls(conn)

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()

    def add(self, *, namespace: str, base_url: str, model: str, input_file_id: str,
            form: str, jobs: Mapping[str, Job]) -> BatchRecord:
        now = time.time()
        record = BatchRecord(uuid.uuid4().hex, input_file_id, None, "uploaded", form,
                             dict(jobs), now)
        self._conn.execute(
            "INSERT INTO batches VALUES (?, ?, ?, ?, ?, NULL, ?, ?, 0, 0, ?, ?, ?, ?, 0)",
            (record.id, namespace, public_url(base_url), model, input_file_id, record.status,
             len(jobs), form, json.dumps({c: list(k) for c, k in jobs.items()}), now, now))
        return record

    def created(self, record_id: str, batch_id: str, status: str) -> None:
        self._conn.execute("UPDATE batches SET batch_id = ?, status = ?, updated = ? WHERE id = ?",
                           (batch_id, status, time.time(), record_id))

    def update(self, record_id: str, status: str, completed: int, failed: int) -> None:
        self._conn.execute(
            "UPDATE batches SET status = ?, completed = ?, failed = ?, updated = ? WHERE id = ?",
            (status, completed, failed, time.time(), record_id))

    def set_status(self, batch_id: str, status: str) -> None:
        self._conn.execute("UPDATE batches SET status = ?, updated = ? WHERE batch_id = ?",
                           (status, time.time(), batch_id))

    def collected(self, record_id: str) -> None:
        self._conn.execute("UPDATE batches SET collected = 1, updated = ? WHERE id = ?",
                           (time.time(), record_id))

    def open_batches(self, namespace: str | None = None) -> list[OpenBatch]:
        """Batches not collected yet (of `namespace`, or all), oldest first."""
        query = ("SELECT id, input_file_id, batch_id, status, form, jobs, created, namespace,"
                 " base_url, model, requests, completed, failed FROM batches"
                 " WHERE collected = 0" + (" AND namespace = ?" if namespace else "")
                 + " ORDER BY created")
        try:
            rows = self._conn.execute(query, (namespace,) if namespace else ()).fetchall()
        except sqlite3.OperationalError:  # a read-only file without the table
            return []
        return [OpenBatch(BatchRecord(r[0], r[1], r[2], r[3], r[4], _jobs(r[5]), r[6]),
                          *r[7:]) for r in rows]

    def bind(self, *, namespace: str, base_url: str, model: str,
             flush: Callable[[], bool], on_error: Callable[[str], None]) -> RunStore:
        return RunStore(self, namespace, base_url, model, flush, on_error)


def _jobs(text: str) -> dict[str, Job]:
    found: Any = json.loads(text)
    return {str(c): tuple(map(str, keys)) for c, keys in found.items()}


class RunStore:
    """One run's view of the table (the dispatcher's `BatchStore`): its namespace and
    server. A write that fails (a full disk, a lock held too long) does not stop the
    run, it is reported (`on_error`): the batches then cannot be resumed after a crash.
    A batch is marked collected only once `flush()` says its answers are written."""

    def __init__(self, state: BatchState, namespace: str, base_url: str, model: str,
                 flush: Callable[[], bool], on_error: Callable[[str], None]) -> None:
        self.state = state
        self.namespace = namespace
        self.base_url = base_url
        self.model = model
        self.flush = flush
        self.on_error = on_error

    def _write(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except sqlite3.Error as exc:
            self.on_error(f"the batches could not be saved in the cache file ({exc}): after a "
                          "crash or restart they would be submitted again")
            return None

    def pending(self) -> list[BatchRecord]:
        try:
            return [b.record for b in self.state.open_batches(self.namespace)]
        except sqlite3.Error as exc:
            self.on_error(f"the open batches could not be read from the cache file ({exc})")
            return []

    def add(self, input_file_id: str, form: str, jobs: Mapping[str, Job]) -> BatchRecord:
        record = self._write(self.state.add, namespace=self.namespace, base_url=self.base_url,
                             model=self.model, input_file_id=input_file_id, form=form,
                             jobs=jobs)
        return record if record is not None else BatchRecord(
            uuid.uuid4().hex, input_file_id, None, "uploaded", form, dict(jobs), time.time())

    def created(self, record_id: str, batch_id: str, status: str) -> None:
        self._write(self.state.created, record_id, batch_id, status)

    def update(self, record_id: str, status: str, completed: int, failed: int) -> None:
        self._write(self.state.update, record_id, status, completed, failed)

    def collected(self, record_id: str) -> None:
        if self.flush():
            self._write(self.state.collected, record_id)
