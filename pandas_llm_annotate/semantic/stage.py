"""The semantic stage: between the exact cache and the scheduler, pipelined.

A background thread loads the embedder (timed apart), reads the stored embeddings of
this namespace, then embeds the pieces still to ask in batches (16 first, so the first
request leaves early, then 64), at most `AHEAD` batches ahead of the requests. On the
event loop, each batch is searched against the index (stored history + this run's
representatives) and every piece gets one of three fates, in column order:

1. **hit**: its best compatible neighbour (cosine >= threshold, no guard objection) has
   an answer, from the cache or from earlier in this run: reused at once.
2. **follower**: that neighbour is a representative of this run still waiting for its
   answer: the piece waits and reuses it when it comes. If the representative fails
   (error, or an answer that is not a label), its followers are asked themselves.
3. **representative**: nothing close enough: it is asked (as a job for the scheduler)
   and joins the index, so later near-duplicates in the run can reuse its answer.

`jobs()` is an async generator handed to the scheduler: it yields representatives as
batches are decided, so requests start after the first batch, never after all of them,
and the scheduler's bounded queue keeps the stream lazy.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..report.metrics import Metrics
from .embedder import Embedder
from .guards import compatible
from .index import MATRIX_LIMIT, VectorIndex, usearch_available
from .store import EmbeddingStore

Job = tuple[str, ...]
FIRST_BATCH = 16
BATCH = 64
AHEAD = 4  # batches embedded but not yet decided, at most
CANDIDATES = 8  # neighbours looked at per piece (best first)


@dataclass(frozen=True)
class Hit:
    """A piece answered with the answer of a near-identical text."""

    key: str
    text: str
    source_key: str
    source_text: str
    similarity: float
    answer: str


class SemanticStage:
    """Decide, piece by piece, whether to reuse an answer or to ask. See the module doc."""

    def __init__(self, todo: Sequence[str], texts: dict[str, str], *, threshold: float,
                 embedder: Embedder, store: EmbeddingStore | None, rows_per_job: int,
                 on_hit: Callable[[Hit], None], metrics: Metrics,
                 matrix_limit: int = MATRIX_LIMIT) -> None:
        self.todo = list(todo)
        self.texts = texts
        self.threshold = threshold
        self._cut = threshold - 1e-6  # similarities are float32: >= threshold to that precision
        self.embedder = embedder
        self.store = store
        self.k = max(1, rows_per_job)
        self.on_hit = on_hit
        self.metrics = metrics
        self.matrix_limit = matrix_limit
        self.hits: dict[str, Hit] = {}
        self.embedded = 0
        self.embed_s = 0.0
        self._index: VectorIndex | None = None
        self._keys: list[str] = []  # entry id -> piece key
        self._entry_texts: list[str] = []
        self._answers: list[str | None] = []  # None: a representative still waiting
        self._dead: set[int] = set()  # representatives that got no answer
        self._entry_of: dict[str, int] = {}
        self._vectors: dict[str, np.ndarray] = {}  # asked pieces, until their answer
        self._followers: dict[str, list[tuple[str, float]]] = {}
        self._waiting = 0
        self._orphans: deque[str] = deque()
        self._wake = asyncio.Event()
        self._inbox: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        self._slots = threading.Semaphore(AHEAD)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._saved_size = -1  # entries of the usearch graph loaded from disk

    # -- the embedding thread -------------------------------------------------------

    def _start(self) -> None:
        loop = asyncio.get_running_loop()

        def post(*item: Any) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody listens
                loop.call_soon_threadsafe(self._inbox.put_nowait, item)

        self._thread = threading.Thread(target=self._work, args=(post,),
                                        name="pla-semantic-embed", daemon=True)
        self._thread.start()

    def _work(self, post: Callable[..., None]) -> None:
        try:
            post("loaded", self.embedder.load())
            self.embedder.pin_threads()
            if self.store is not None:
                post("history", *self._history())
            start = 0
            while start < len(self.todo) and not self._stop.is_set():
                size = FIRST_BATCH if start == 0 else BATCH
                while not self._slots.acquire(timeout=0.1):
                    if self._stop.is_set():
                        return
                batch = self.todo[start : start + size]
                began = time.perf_counter()
                vectors = self.embedder.encode([self.texts[k] for k in batch])
                self.embed_s += time.perf_counter() - began
                self.embedded += len(batch)
                post("batch", batch, vectors)
                start += size
            post("end")
        except BaseException as exc:  # handed to the event loop, raised there
            post("error", exc)

    def stop(self) -> None:
        """Stop the embedding thread (it exits within 0.1 s, or after its current batch)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def close(self) -> None:
        """Stop the thread, save a usearch graph that changed, close the store; call once
        the scheduler is done."""
        self.stop()
        if self.store is None:
            return
        index = self._index
        if index is not None and index.backend == "usearch" and len(index) != self._saved_size:
            live = np.array([a is not None and i not in self._dead
                             for i, a in enumerate(self._answers)], dtype=bool)
            self.store.save_ann(index, self._keys, live)
        self.store.close()

    # -- the job stream ---------------------------------------------------------------

    async def jobs(self) -> AsyncIterator[Job]:
        """Representatives to ask, in packs of `rows_per_job`; see the module doc."""
        self._check_size(0)
        self._start()
        pack: list[str] = []
        try:
            while True:
                while self._orphans:
                    yield (self._orphans.popleft(),)
                item = await self._inbox.get()
                kind = item[0]
                if kind == "error":
                    raise item[1]
                if kind == "loaded":
                    self.metrics.embedder_load_s = round(float(item[1]), 4)
                elif kind == "history":
                    self._add_history(item[1], item[2], item[3], item[4], item[5])
                elif kind == "batch":
                    self._slots.release()
                    for key in await self._decide(item[1], item[2]):
                        pack.append(key)
                        if len(pack) == self.k:
                            yield tuple(pack)
                            pack = []
                else:  # "end"
                    break
            if pack:
                yield tuple(pack)
            while True:
                if self._orphans:
                    orphans = [self._orphans.popleft() for _ in range(len(self._orphans))]
                    for i in range(0, len(orphans), self.k):
                        yield tuple(orphans[i : i + self.k])
                    continue
                if not self._waiting:
                    return
                self._wake.clear()
                if not self._orphans and self._waiting:
                    await self._wake.wait()
        finally:
            self.stop()

    def _history(self) -> tuple[VectorIndex | None, list[str], list[str], list[str | None],
                                set[int]]:
        """(In the thread.) The index of the stored texts, their keys, texts and answers,
        and the ids of dead entries: from the saved usearch graph when there is one,
        else built from the stored vectors."""
        assert self.store is not None
        keys, texts, answers, vectors = self.store.load()
        if vectors is None:
            return None, [], [], [], set()
        self._check_size(len(keys))
        dim = vectors.shape[1]
        saved = self.store.load_ann(dim, self.matrix_limit) \
            if len(keys) > self.matrix_limit else None
        if saved is None:
            index = VectorIndex(dim, self.matrix_limit)
            index.add(vectors)
            return index, keys, texts, list(answers), set()
        index, saved_keys = saved
        self._saved_size = len(index)
        row = {k: i for i, k in enumerate(keys)}
        out_keys: list[str] = []
        out_texts: list[str] = []
        out_answers: list[str | None] = []
        dead: set[int] = set()
        for pos, key in enumerate(saved_keys):
            i = row.pop(key, None) if key else None
            if i is None:  # its answer is gone (or it never got one): never a candidate
                dead.add(pos)
                out_keys.append(f"dead:{pos}")
                out_texts.append("")
                out_answers.append(None)
            else:
                out_keys.append(key)
                out_texts.append(texts[i])
                out_answers.append(answers[i])
        rest = sorted(row.values())  # stored since the graph was saved
        if rest:
            index.add(vectors[rest])
            out_keys += [keys[i] for i in rest]
            out_texts += [texts[i] for i in rest]
            out_answers += [answers[i] for i in rest]
        return index, out_keys, out_texts, out_answers, dead

    def _add_history(self, index: VectorIndex | None, keys: list[str], texts: list[str],
                     answers: list[str | None], dead: set[int]) -> None:
        if index is None:
            return
        self._index = index
        self._keys, self._entry_texts, self._answers, self._dead = keys, texts, answers, dead

    def _check_size(self, history: int) -> None:
        """Fail before the first request, not midway, when the index would outgrow the
        numpy matrix and usearch is missing."""
        if history + len(self.todo) > self.matrix_limit and not usearch_available():
            from . import missing

            raise missing(f"usearch (an index of more than {self.matrix_limit:,} texts)")

    def _ensure_index(self, dim: int) -> VectorIndex:
        if self._index is None:
            self._index = VectorIndex(dim, self.matrix_limit)
        elif self._index.dim != dim:
            raise ValueError(f"the embedder changed dimension ({self._index.dim} -> {dim})")
        return self._index

    async def _decide(self, batch: list[str], vectors: np.ndarray) -> list[str]:
        """Hit, follow or ask, for each piece of one batch; returns the ones to ask."""
        index = self._ensure_index(vectors.shape[1])
        if len(index):
            sims, ids = await asyncio.to_thread(index.search, vectors, CANDIDATES)
        else:
            sims = np.full((len(batch), 0), -np.inf, dtype=np.float32)
            ids = np.full((len(batch), 0), -1, dtype=np.int64)
        within = vectors @ vectors.T  # this batch against itself
        reps: list[int] = []  # positions in the batch that are asked
        ask: list[str] = []
        for i, key in enumerate(batch):
            text = self.texts[key]
            cands = [(float(s), int(e)) for s, e in zip(sims[i], ids[i], strict=True)
                     if e >= 0 and s >= self._cut]
            cands += [(float(within[i, j]), self._entry_of[batch[j]]) for j in reps
                      if within[i, j] >= self._cut]
            cands.sort(key=lambda c: -c[0])
            best = next((c for c in cands if c[1] not in self._dead
                         and compatible(text, self._entry_texts[c[1]])), None)
            if best is None:
                self._entry_of[key] = len(self._keys)
                self._keys.append(key)
                self._entry_texts.append(text)
                self._answers.append(None)
                self._vectors[key] = vectors[i]
                reps.append(i)
                ask.append(key)
                continue
            sim, entry = best
            answer = self._answers[entry]
            if answer is None:
                self._followers.setdefault(self._keys[entry], []).append((key, sim))
                self._vectors[key] = vectors[i]  # kept in case it must be asked after all
                self._waiting += 1
            else:
                self._hit(key, entry, sim, answer)
        index.add(vectors[reps])
        return ask

    def _hit(self, key: str, entry: int, sim: float, answer: str) -> None:
        self._vectors.pop(key, None)
        hit = Hit(key, self.texts[key], self._keys[entry], self._entry_texts[entry],
                  round(sim, 4), answer)
        self.hits[key] = hit
        self.metrics.semantic_hits += 1
        self.on_hit(hit)

    # -- answers from the scheduler ----------------------------------------------------

    def answered(self, key: str, answer: str | None) -> None:
        """The outcome of an asked piece: its valid answer, or None (failed/invalid)."""
        vector = self._vectors.pop(key, None)
        entry = self._entry_of.get(key)
        followers = self._followers.pop(key, [])
        if answer is not None:
            if vector is not None and self.store is not None:
                self.store.put(key, self.texts[key], vector)
            if entry is not None:
                self._answers[entry] = answer
                for follower, sim in followers:
                    self._hit(follower, entry, sim, answer)
        else:
            if entry is not None:
                self._dead.add(entry)
            self._orphans.extend(f for f, _ in followers)
        if followers:
            self._waiting -= len(followers)
            self._wake.set()


def open_stage(todo: Sequence[str], texts: dict[str, str], *, setting: bool | float,
               embedder: Any, namespace: str, cache_path: Any, rows_per_job: int,
               on_hit: Callable[[Hit], None], metrics: Metrics) -> SemanticStage:
    """The stage for one run: `setting` is `Settings.semantic`, `embedder` its `embedder`;
    `cache_path` None keeps embeddings in memory only (cache=False)."""
    from . import threshold_of
    from .embedder import resolve

    threshold = threshold_of(setting)
    assert threshold is not None
    model = resolve(embedder)
    store = None if cache_path is None else EmbeddingStore(cache_path, namespace, model.ident)
    return SemanticStage(todo, texts, threshold=threshold, embedder=model, store=store,
                         rows_per_job=rows_per_job, on_hit=on_hit, metrics=metrics)
