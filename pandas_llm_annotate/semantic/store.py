"""Embeddings of answered texts, kept in the answer cache's SQLite file.

Table `embeddings`: one row per (namespace, embedder, piece key) with the text (so a
semantic hit can show what it reused) and the float32 vector. Only texts that were
really asked and got a valid answer are stored: an answer reused by a semantic hit is
neither cached nor indexed, so hits never chain (A reused for B, B for C, …).
The file keeps the cache's mode 0600; no API key is ever part of it.

Past the matrix size the HNSW graph is also saved, beside the cache file in
`<cache>.ann/<hash of namespace and embedder>.usearch` (mode 0600) with the piece key of
each of its entries (`.keys.npy`), and loaded by the next session; rows stored since are
added to it, entries whose answer is gone are skipped.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from pathlib import Path

import numpy as np

from .index import VectorIndex

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS embeddings (namespace TEXT NOT NULL, embedder TEXT NOT NULL,"
    " key TEXT NOT NULL, text TEXT NOT NULL, dim INTEGER NOT NULL, vector BLOB NOT NULL,"
    " created REAL NOT NULL, PRIMARY KEY (namespace, embedder, key))"
)


class EmbeddingStore:
    """Read and append the embeddings of one namespace and one embedder."""

    def __init__(self, path: Path, namespace: str, embedder: str) -> None:
        self.path = path
        self.namespace = namespace
        self.embedder = embedder
        self._conn = sqlite3.connect(path, timeout=30, isolation_level=None,
                                     check_same_thread=False)
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(SCHEMA)

    def __repr__(self) -> str:
        return f"EmbeddingStore({str(self.path)!r}, embedder={self.embedder!r})"

    def load(self) -> tuple[list[str], list[str], list[str], np.ndarray | None]:
        """Keys, texts, answers and vectors of the stored texts whose answer is cached."""
        rows = self._conn.execute(
            "SELECT e.key, e.text, a.answer, e.dim, e.vector FROM embeddings e"
            " JOIN answers a ON a.key = e.key"
            " WHERE e.namespace = ? AND e.embedder = ? ORDER BY e.rowid",
            (self.namespace, self.embedder),
        ).fetchall()
        if not rows:
            return [], [], [], None
        dim = int(rows[-1][3])
        rows = [r for r in rows if int(r[3]) == dim]
        blob = b"".join(r[4] for r in rows)
        vectors = np.frombuffer(blob, dtype=np.float32).reshape(len(rows), dim)
        return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], vectors

    def put(self, key: str, text: str, vector: np.ndarray) -> None:
        """Store one embedding now (its own commit, like the answers)."""
        vec = np.ascontiguousarray(vector, dtype=np.float32)
        self._conn.execute(
            "INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?, ?, ?, ?, ?)",
            (self.namespace, self.embedder, key, text, int(vec.shape[-1]), vec.tobytes(),
             time.time()),
        )

    @property
    def ann_path(self) -> Path:
        name = hashlib.sha256(f"{self.namespace}\0{self.embedder}".encode()).hexdigest()[:24]
        return self.path.parent / f"{self.path.name}.ann" / f"{name}.usearch"

    def save_ann(self, index: VectorIndex, keys: list[str], live: np.ndarray) -> None:
        """Save a usearch index with the key of each entry (dead entries get key "")."""
        target = self.ann_path
        target.parent.mkdir(mode=0o700, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        index.save(tmp)
        os.chmod(tmp, 0o600)
        names = np.array([k if ok else "" for k, ok in zip(keys, live, strict=True)], dtype="S64")
        with open(os.open(f"{target}.keys.npy", os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600),
                  "wb") as fh:
            np.save(fh, names)
        os.replace(tmp, target)

    def load_ann(self, dim: int, matrix_limit: int) -> tuple[VectorIndex, list[str]] | None:
        """The saved usearch index and its keys, or None (absent, unreadable, stale)."""
        target = self.ann_path
        keys_file = Path(f"{target}.keys.npy")
        if not (target.exists() and keys_file.exists()):
            return None
        try:
            keys = [k.decode() for k in np.load(keys_file, allow_pickle=False).tolist()]
            index = VectorIndex.restore(target, dim, matrix_limit)
        except (OSError, ValueError, RuntimeError):
            return None
        return (index, keys) if len(index) == len(keys) else None

    def count(self) -> int:
        return int(self._conn.execute(
            "SELECT count(*) FROM embeddings WHERE namespace = ? AND embedder = ?",
            (self.namespace, self.embedder),
        ).fetchone()[0])

    def close(self) -> None:
        self._conn.close()
