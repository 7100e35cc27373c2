"""The package's exceptions, one tree.

```
AnnotateError
├── ConfigError            bad or missing settings (model, key, URL, arguments)
│   ├── UnknownSetting     also a TypeError: a setting name that does not exist
│   └── DataFileError      a data, labels or prompt file that cannot be read or written
├── ColumnNotFoundError    also a KeyError: the column is not in the frame
├── CacheError             the cache file cannot be opened or read (the message names it)
└── RequestError           one request failed
    ├── TransportError     no HTTP answer
    │   ├── ConnectError        the server could not be reached
    │   ├── ReadTimeout         no answer within `timeout`
    │   └── ConnectionLost      the connection dropped mid-request
    ├── MalformedResponse  an answer that is not the JSON we expect
    ├── BatchRequestError  a request in a Batch API job got no answer (expired, cancelled…)
    └── APIError           an HTTP error status (has .status, .body, .headers)
        ├── BadRequestError        400, 422
        ├── AuthenticationError    401, 403: stops the whole run
        ├── NotFoundError          404: stops the whole run
        ├── RedirectError          3xx: the API is not at base_url; stops the whole run
        ├── RateLimitError         429
        └── ServerError            408, 409, 5xx and anything else
```

Messages say what to do next. None of them ever contains the API key.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urljoin, urlsplit

_ENDPOINT = "/chat/completions"


class AnnotateError(Exception):
    """Base class of every error this package raises."""


class ConfigError(AnnotateError, ValueError):
    """A setting is missing or wrong; the message says how to fix it."""


class UnknownSetting(ConfigError, TypeError):
    """A setting (or option) name that does not exist; the message names the closest."""


class DataFileError(ConfigError):
    """A file of the command line (data, labels, prompt) that cannot be read or written,
    or whose format is unknown; the message names it and says what to do."""


class ColumnNotFoundError(AnnotateError, KeyError):
    """The named column is not in the DataFrame."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class CacheError(AnnotateError):
    """The cache file cannot be opened or read; the message names it and says what to do."""


class RequestError(AnnotateError):
    """One request failed. `retryable` says whether trying again may help."""

    retryable = True


class TransportError(RequestError):
    """No HTTP answer came back."""


class ConnectError(TransportError):
    """The server could not be reached (refused, DNS, TLS)."""


class ReadTimeout(TransportError):
    """No complete answer within the timeout; `elapsed`: seconds waited in vain."""

    def __init__(self, message: str, *, elapsed: float = 0.0) -> None:
        super().__init__(message)
        self.elapsed = elapsed


class ConnectionLost(TransportError):
    """The connection dropped before the answer was complete."""


class MalformedResponse(RequestError):
    """The server answered 2xx, but not with the JSON or SSE we expect."""


class BatchRequestError(RequestError):
    """A request sent in a Batch API job came back without an answer: its batch expired,
    was cancelled or failed, or the request failed there; `code` is the server's."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class APIError(RequestError):
    """The server answered with an error status."""

    def __init__(
        self, message: str, *, status: int, body: str = "", headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = body
        self.headers: Mapping[str, str] = headers or {}


class BadRequestError(APIError):
    """400/422: the request itself is wrong; retrying the same one cannot help."""

    retryable = False


class AuthenticationError(APIError):
    """401/403: the API key is missing, wrong or not allowed; stops the run."""

    retryable = False


class NotFoundError(APIError):
    """404: wrong model name or wrong base URL; stops the run."""

    retryable = False


class RedirectError(APIError):
    """3xx: the API is not at `base_url` (a POST is never redirected); stops the run."""

    retryable = False


class RateLimitError(APIError):
    """429: slow down; the headers say for how long."""


class ServerError(APIError):
    """408, 409, 5xx or another status worth retrying."""


def error_for_status(
    status: int, body: str, headers: Mapping[str, str], url: str
) -> APIError:
    """Build the exception for an HTTP error status, with a message that says what to do."""
    detail = _server_message(body)
    if status in (401, 403):
        return AuthenticationError(
            f"The server at {url} refused the API key (HTTP {status}: {detail}). "
            "Check the key: pass api_key=..., call pandas_llm_annotate.configure(api_key=...) "
            "or set OPENAI_API_KEY.",
            status=status, body=body, headers=headers,
        )
    if 300 <= status < 400:
        return _redirect(status, body, headers, url)
    if status == 404:
        return NotFoundError(
            f"HTTP 404 from {url}: {detail}. Check the model name (model=...) and that "
            "base_url ends with the API root, usually '/v1'.",
            status=status, body=body, headers=headers,
        )
    if status in (400, 422):
        return BadRequestError(
            f"HTTP {status} from {url}: {detail}", status=status, body=body, headers=headers
        )
    if status == 429:
        return RateLimitError(
            f"HTTP 429 rate limited by {url}: {detail}", status=status, body=body, headers=headers
        )
    return ServerError(
        f"HTTP {status} from {url}: {detail}", status=status, body=body, headers=headers
    )


def _redirect(status: int, body: str, headers: Mapping[str, str], url: str) -> RedirectError:
    """A 3xx: the message names where the server points, and the base_url that may fit."""
    raw = str(headers.get("Location", ""))[:500]
    target, advice = "redirects (no Location)", ""
    if raw:
        try:
            location = urlsplit(urljoin(url, raw))
        except ValueError:  # e.g. a broken IPv6 host: shown as sent
            target = f"redirects to {raw!r}"
        else:
            target = f"redirects to {location.geturl()!r}"
            if location.path.endswith(_ENDPOINT):
                root = location._replace(path=location.path[: -len(_ENDPOINT)], query="")
                advice = f" (base_url={root.geturl()!r}?)"
    return RedirectError(
        f"HTTP {status} from {url}: the server {target}. A request is not followed (its "
        f"body would be lost or sent elsewhere): set base_url to where the API is{advice}.",
        status=status, body=body, headers=headers,
    )


def _server_message(body: str) -> str:
    """The `error.message` of an OpenAI-style error body, or the body's start."""
    import json

    try:
        data = json.loads(body)
        msg = data["error"]["message"] if isinstance(data.get("error"), dict) else data["error"]
        return str(msg)[:300]
    except (ValueError, KeyError, TypeError, AttributeError):
        return body.strip()[:300] or "(empty body)"
