"""Label a pandas column with an LLM, fast.

```python
import pandas_llm_annotate as pla   # registers df.llm and series.llm
pla.configure(model="gpt-4o-mini", api_key="sk-...")
df["intent"] = df.llm.annotate("text", "Which banking intent is this?", labels=INTENTS)
df = df.join(df.llm.extract("text", {"amount": float | None, "urgent": bool}))
print(pla.last_report())
```
"""

from __future__ import annotations

from . import accessor as _accessor  # noqa: F401  (registers the accessors)
from . import dask as _dask
from .api import (
    aannotate,
    acancel_batches,
    aestimate,
    aextract,
    annotate,
    batches,
    cancel_batches,
    estimate,
    extract,
    last_report,
)
from .config import Options, Settings, configure
from .display import html as _html  # noqa: F401  (draws reports: Report._repr_html_)
from .errors import (
    AnnotateError,
    APIError,
    AuthenticationError,
    BadRequestError,
    BatchRequestError,
    CacheError,
    ColumnNotFoundError,
    ConfigError,
    ConnectError,
    ConnectionLost,
    DataFileError,
    MalformedResponse,
    NotFoundError,
    RateLimitError,
    ReadTimeout,
    RedirectError,
    RequestError,
    ServerError,
    TransportError,
    UnknownSetting,
)
from .protocol.prompts import DEFAULT_TASK
from .report.estimate import Estimate
from .report.report import Report

__version__ = "0.1.0"
_dask.install()  # ddf.llm and dseries.llm, once dask.dataframe is imported (if ever)

__all__ = [
    "DEFAULT_TASK",
    "APIError",
    "AnnotateError",
    "AuthenticationError",
    "BadRequestError",
    "BatchRequestError",
    "CacheError",
    "ColumnNotFoundError",
    "ConfigError",
    "ConnectError",
    "ConnectionLost",
    "DataFileError",
    "Estimate",
    "MalformedResponse",
    "NotFoundError",
    "Options",
    "RateLimitError",
    "ReadTimeout",
    "RedirectError",
    "Report",
    "RequestError",
    "ServerError",
    "Settings",
    "TransportError",
    "UnknownSetting",
    "aannotate",
    "acancel_batches",
    "aestimate",
    "aextract",
    "annotate",
    "batches",
    "cancel_batches",
    "configure",
    "estimate",
    "extract",
    "last_report",
]
