"""Settings: call arguments > `configure(...)` > environment variables > defaults."""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypedDict

from .errors import ConfigError, UnknownSetting
from .redact import has_credentials, redact_url

OPENAI_BASE_URL = "https://api.openai.com/v1"
ENV_VARS = {
    "api_key": "OPENAI_API_KEY",
    "base_url": "OPENAI_BASE_URL",
    "model": "LLM_ANNOTATE_MODEL",
}

Progress = Literal["auto", "summary"] | bool
BatchFallback = Literal["batch", "online"]
EmbedderSpec = str | Path | Callable[[list[str]], Any]  # model name, local path or callable


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything a run needs besides the data. The API key and the password of
    `base_url` never show in `repr`."""

    model: str | None = None
    base_url: str | Sequence[str] = OPENAI_BASE_URL  # several: servers of one model
    api_key: str | None = field(default=None, repr=False)
    max_concurrency: int = 64
    max_retries: int = 6
    timeout: float = 60.0
    max_wait: float = 300.0  # seconds: a server-named wait longer than this ends the run
    temperature: float = 0.0
    max_tokens: int | None = None
    max_chunk_tokens: int = 1000
    max_response_bytes: int = 4 * 1024 * 1024  # per answer, decompressed: more is malformed
    cache: bool | str | Path = True
    cache_namespace: str | None = None  # the server identity in cache keys (pipeline/identity)
    stream: bool = False
    progress: Progress = "auto"
    price: tuple[float, float] | None = None  # USD per 1M prompt / completion tokens
    max_cost: float | None = None  # USD: the run stops before it could spend more
    rpm: float | None = None
    tpm: float | None = None
    rows_per_request: int | Literal["auto"] = 1
    structured: bool = True  # constrain label answers with a JSON schema where the server can
    semantic: bool | float = False  # True: the default threshold; a float: the threshold
    embedder: EmbedderSpec | None = None  # None: all-MiniLM-L6-v2
    batch: bool = False  # through the provider's Batch API: half price, answers within 24 h
    batch_fallback: BatchFallback = "batch"  # rows a batch did not answer: a new batch, or online
    batch_poll_s: float = 1.0  # the first wait between batch status checks (it grows to 60 s)

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{f.name}={redact_url(repr(getattr(self, f.name)))}"
            for f in dataclasses.fields(self) if f.repr
        )
        key = "set" if self.api_key else "unset"
        return f"Settings({shown}, api_key=<{key}>)"

    @property
    def base_urls(self) -> tuple[str, ...]:
        """The servers: `base_url` as a tuple (one or several)."""
        return (self.base_url,) if isinstance(self.base_url, str) else tuple(self.base_url)

    def check(self) -> Settings:
        """Raise ConfigError, saying what to do, when the settings cannot work."""
        if not self.model:
            raise ConfigError(
                "No model configured. Pass model='...', call "
                "pandas_llm_annotate.configure(model='...', base_url='...', api_key='...') or set "
                "LLM_ANNOTATE_MODEL. To try the package without a key, start the simulator: "
                "`with pandas_llm_annotate.simulator.serve() as sim: "
                "configure(model='sim', base_url=sim.base_url)`."
            )
        urls = self.base_urls
        if not urls or not all(isinstance(u, str) for u in urls):
            raise ConfigError(
                "base_url must be a URL, or a list of URLs of servers that serve the same "
                f"model, got {redact_url(repr(self.base_url))}.")
        for url in urls:
            _check_url(url, self.api_key)
        if self.batch and len(urls) > 1:
            raise ConfigError("batch=True sends to one server's Batch API: pass one base_url "
                              "(several servers work online).")
        _check_key(self.api_key)
        if OPENAI_BASE_URL in (u.rstrip("/") for u in urls) and not self.api_key:
            raise ConfigError(
                "No API key for api.openai.com. Pass api_key='sk-...', call "
                "pandas_llm_annotate.configure(api_key=...) or set OPENAI_API_KEY. For a local "
                "server (vLLM, llama.cpp, the bundled simulator) set base_url=... instead."
            )
        for name in ("max_concurrency", "max_chunk_tokens", "max_response_bytes"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)!r}.")
        if self.max_retries < 0 or self.timeout <= 0:
            raise ConfigError("max_retries must be >= 0 and timeout > 0.")
        if not self.max_wait > 0:
            raise ConfigError(
                f"max_wait must be a number of seconds > 0 (math.inf: wait as long as the "
                f"server asks), got {self.max_wait!r}."
            )
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ConfigError(f"max_tokens must be at least 1, got {self.max_tokens!r}.")
        rows = self.rows_per_request
        if rows != "auto" and not (isinstance(rows, int) and rows >= 1):
            raise ConfigError(
                f"rows_per_request must be a whole number >= 1 or 'auto', got {rows!r}."
            )
        price = self.price
        if price is not None and not (
                isinstance(price, (tuple, list)) and len(price) == 2
                and all(isinstance(p, (int, float)) and p >= 0 for p in price)):
            raise ConfigError(
                "price must be (input, output) USD per 1M tokens, two numbers >= 0, e.g. "
                f"price=(0.15, 0.60); got {price!r}.")
        if self.max_cost is not None and (
                not isinstance(self.max_cost, (int, float)) or self.max_cost <= 0):
            raise ConfigError(f"max_cost must be a positive number of USD, got "
                              f"{self.max_cost!r}.")
        for name in ("rpm", "tpm"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"{name} must be positive (or None to learn it), got {value!r}.")
        if self.progress not in ("auto", "summary", True, False):
            raise ConfigError(
                f"progress must be 'auto', 'summary', True or False, got {self.progress!r}.")
        sem = self.semantic
        if not isinstance(sem, bool) and not (isinstance(sem, (int, float)) and 0 < sem <= 1):
            raise ConfigError(
                "semantic must be True/False or a cosine threshold in (0, 1], e.g. 0.97; "
                f"got {sem!r}."
            )
        if self.batch_fallback not in ("batch", "online"):
            raise ConfigError(
                f"batch_fallback must be 'batch' or 'online', got {self.batch_fallback!r}.")
        if not (isinstance(self.batch_poll_s, (int, float)) and self.batch_poll_s > 0):
            raise ConfigError(f"batch_poll_s must be a positive number of seconds, got "
                              f"{self.batch_poll_s!r}.")
        if self.batch and self.semantic:
            raise ConfigError(
                "semantic= does not work with batch=True yet (near-duplicates wait for the "
                "answers of the texts they resemble). Pass semantic=False, or batch=False.")
        emb = self.embedder
        if emb is not None and not isinstance(emb, (str, Path)) and not callable(emb):
            raise ConfigError(
                "embedder must be a sentence-transformers model name, a local path or a "
                f"callable list[str] -> array, got {type(emb).__name__}."
            )
        return self


def _check_url(url: str, api_key: str | None) -> None:
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"base_url must start with http:// or https://, got {redact_url(url)!r}.")
    if api_key and has_credentials(url):
        raise ConfigError(
            f"base_url carries a user name and password ({redact_url(url)}) and "
            "api_key is set too, but a request has one Authorization header. Keep one: "
            "remove the credentials from base_url, or unset api_key "
            "(configure(api_key=None), OPENAI_API_KEY)."
        )


def _check_key(key: str | None) -> None:
    """A key is sent in a header: printable ASCII, no spaces (never shown in the message)."""
    for i, char in enumerate(key or ""):
        if not "!" <= char <= "~":
            raise ConfigError(
                f"api_key has {char!r} at position {i}: a key is printable ASCII without "
                "spaces. Read from a file or pasted with quotes? Pass the key alone, e.g. "
                "api_key=Path('key.txt').read_text().strip()."
            )


_FIELDS = tuple(f.name for f in dataclasses.fields(Settings))
_configured: dict[str, Any] = {}


def _check_names(names: Any) -> None:
    for name in names:
        if name not in _FIELDS:
            close = difflib.get_close_matches(name, _FIELDS, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise UnknownSetting(f"Unknown setting {name!r}.{hint} Known: {', '.join(_FIELDS)}.")


def configure(**settings: Any) -> Settings:
    """Set process-wide defaults, e.g. `configure(model=..., base_url=..., api_key=...)`.

    Passing `None` for a setting forgets it. Returns the settings now in force.
    """
    _check_names(settings)
    for name, value in settings.items():
        if value is None:
            _configured.pop(name, None)
        else:
            _configured[name] = value
    return resolve()


def resolve(**overrides: Any) -> Settings:
    """Merge defaults, environment, `configure(...)` and the call's own arguments."""
    _check_names(overrides)
    merged: dict[str, Any] = {}
    for name, var in ENV_VARS.items():
        if os.environ.get(var):
            merged[name] = os.environ[var]
    merged.update(_configured)
    merged.update({k: v for k, v in overrides.items() if v is not None})
    if "base_url" in merged:
        merged["base_url"] = _clean_urls(merged["base_url"])
    if "api_key" in merged:  # a key read from a file often ends with a newline
        merged["api_key"] = str(merged["api_key"]).strip() or None
    return Settings(**merged)


def _clean_urls(value: Any) -> Any:
    """One URL without spaces and trailing slashes; several: a tuple of them, each once."""
    if isinstance(value, (str, Path)):
        return str(value).strip().rstrip("/")
    if isinstance(value, (list, tuple)):
        return tuple(dict.fromkeys(_clean_urls(v) if isinstance(v, str) else v for v in value))
    return value  # check() says what is wrong


class Options(TypedDict, total=False):
    """Per-call settings accepted by `annotate`; each overrides `configure(...)`.

    The same names and types as `Settings` (checked when this module loads: a field
    added to one and not the other fails the import, and the tests)."""

    model: str
    base_url: str | Sequence[str]
    api_key: str
    max_concurrency: int
    max_retries: int
    timeout: float
    max_wait: float
    temperature: float
    max_tokens: int
    max_chunk_tokens: int
    max_response_bytes: int
    cache: bool | str | Path
    cache_namespace: str
    stream: bool
    progress: Progress
    price: tuple[float, float]
    max_cost: float
    rpm: float
    tpm: float
    rows_per_request: int | Literal["auto"]
    structured: bool
    semantic: bool | float
    embedder: EmbedderSpec
    batch: bool
    batch_fallback: BatchFallback
    batch_poll_s: float


def _check_options_match_settings() -> None:
    fields = {f.name: f.type for f in dataclasses.fields(Settings)}
    options = {k: v.__forward_arg__ if hasattr(v, "__forward_arg__") else v
               for k, v in Options.__annotations__.items()}
    if set(fields) != set(options):
        raise AssertionError(f"Options and Settings differ: {set(fields) ^ set(options)}")
    for name, kind in options.items():
        if str(fields[name]).replace(" | None", "") != str(kind).replace(" | None", ""):
            raise AssertionError(f"Options[{name!r}] is {kind}, Settings.{name} is {fields[name]}")


_check_options_match_settings()
