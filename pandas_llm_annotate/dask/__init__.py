"""Dask DataFrames and Series: `ddf.llm.annotate(...)` (install `pandas-llm-annotate[dask]`).

The accessors are registered when both this package and `dask.dataframe` are imported,
in either order, without importing dask for users who do not use it (`install`).

- `graph.py`: the lazy graph (distinct texts across partitions, one pandas run per
  partition of them on the workers, the answers mapped back)
- `coordinator.py`: the cluster's rate budget, a distributed Actor
- `lease.py`: each worker process's slots leased from it
- `accessor.py`: `ddf.llm`, `dseries.llm`
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
from collections.abc import Sequence

TARGET = "dask.dataframe"


def install() -> None:
    """Register the accessors now if dask.dataframe is imported, else when it is."""
    if TARGET in sys.modules:
        _register()
    elif not any(isinstance(f, _AfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport())


def _register() -> None:
    importlib.import_module(f"{__name__}.accessor")


class _AfterImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: wraps the loader of dask.dataframe so that the accessors
    are registered right after it is imported, then leaves sys.meta_path."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: types.ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != TARGET:
            return None
        sys.meta_path.remove(self)
        spec: importlib.machinery.ModuleSpec | None = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module: types.ModuleType) -> None:
            exec_module(module)
            _register()

        spec.loader.exec_module = exec_then_register  # type: ignore[method-assign]
        return spec
