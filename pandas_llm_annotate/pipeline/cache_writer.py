"""Group commits of answers on a background thread: the event loop never waits for
the disk or for a lock another process holds."""

from __future__ import annotations

import contextlib
import queue
import sqlite3
import threading
from typing import Any

GROUP_S = 0.01  # answers arriving this close together share one commit
# Rows per INSERT statement. One statement per row (executemany) takes the GIL back
# after every row; with the event loop busy each take can wait the 5 ms switch interval,
# so at thousands of answers/s the writer fell hundreds of answers behind.
CHUNK = 100
_STOP = object()


class CacheWriter:
    """Writes rows with `sql` in one transaction per group. After the first error it
    stops writing and counts what it could not save (`error`, `lost`)."""

    CLOSE_S = 10.0  # `close` waits this long for the queue to be written

    def __init__(self, conn: sqlite3.Connection, sql: str) -> None:
        self._conn = conn
        self._head, row = sql.rsplit("VALUES", 1)  # for `_many`
        self._row = row.strip()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._hurry = threading.Event()  # set by flush and close: write now, do not wait
        self.error: BaseException | None = None
        self.lost = 0
        self.written = 0
        self.closed = False
        self.stopping = False
        self._thread = threading.Thread(target=self._run, name="pla-cache-writer",
                                        daemon=True)
        self._thread.start()

    def _many(self, n: int) -> str:
        """`sql` (one `VALUES (...)` row) for `n` rows in one statement."""
        return f"{self._head}VALUES {', '.join([self._row] * n)}"

    def add(self, row: tuple[Any, ...]) -> None:
        self._queue.put(row)

    def flush(self) -> bool:
        """Wait (at most `CLOSE_S`) until what is queued now is written; False when it
        could not be (an error, or a lock held that long)."""
        if self.stopping:
            return self.closed and self.error is None
        done = threading.Event()
        self._queue.put(done)
        self._hurry.set()
        return done.wait(self.CLOSE_S) and self.error is None

    def close(self) -> None:
        """Stop after writing what is queued. `closed` is False when the thread is
        still stuck (a lock): the connection must then stay open for it."""
        self.stopping = True
        self._queue.put(_STOP)
        self._hurry.set()
        self._thread.join(self.CLOSE_S)
        self.closed = not self._thread.is_alive()

    def _run(self) -> None:
        stop = False
        while not stop:
            group = [self._queue.get()]  # idle until the first answer of a group
            if group[0] is _STOP:
                break
            # The rest of the group gathers while this thread waits: waking it for each
            # row (a get with a timeout) cost the event loop a GIL hand-off per answer.
            self._hurry.wait(GROUP_S)
            self._hurry.clear()  # what set it was queued before: the drain below sees it
            while True:
                try:
                    row = self._queue.get_nowait()
                except queue.Empty:
                    break
                if row is _STOP:
                    stop = True
                    break
                group.append(row)
            self._write(group)

    def _write(self, group: list[Any]) -> None:
        rows = [row for row in group if not isinstance(row, threading.Event)]
        try:
            self._write_rows(rows)
        finally:
            for flushed in group:
                if isinstance(flushed, threading.Event):
                    flushed.set()

    def _write_rows(self, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        if self.error is not None:
            self.lost += len(rows)
            return
        try:
            self._conn.execute("BEGIN")
            for start in range(0, len(rows), CHUNK):
                part = rows[start : start + CHUNK]
                self._conn.execute(self._many(len(part)), [v for row in part for v in row])
            self._conn.execute("COMMIT")
            self.written += len(rows)
        except (sqlite3.Error, OSError) as exc:
            self.error = exc
            self.lost += len(rows)
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")
