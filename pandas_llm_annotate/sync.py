"""Run the async core from sync code: scripts, and Jupyter's already-running loop."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run` when no loop runs; inside a running loop (Jupyter) make it
    reentrant with nest_asyncio2, or, where that is impossible (uvloop and other
    foreign loops), run on a background thread's own loop.

    Ctrl-C cancels the coroutine (so it closes its session and keeps its cache
    and report) and then re-raises KeyboardInterrupt.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is None:  # outside the `except`: errors of the run are not chained to it
        return asyncio.run(coro)
    if _patch(loop):
        return _run_nested(loop, coro)
    return _run_in_thread(coro)


def _patch(loop: asyncio.AbstractEventLoop) -> bool:
    if getattr(loop, "_nest_patched", False):
        return True
    if type(loop).__module__.split(".")[0] != "asyncio":
        return False  # uvloop and friends cannot be patched
    try:
        import nest_asyncio2
    except ImportError:
        return False
    try:
        nest_asyncio2.apply(loop)
    except (ValueError, RuntimeError, AttributeError):
        return False
    return True


def _run_nested(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
    task = asyncio.ensure_future(coro, loop=loop)
    try:
        return loop.run_until_complete(task)
    except KeyboardInterrupt:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            loop.run_until_complete(task)
        raise


def _run_in_thread(coro: Coroutine[Any, Any, T]) -> T:
    box: dict[str, Any] = {}
    loop = asyncio.new_event_loop()

    def main() -> None:
        asyncio.set_event_loop(loop)
        try:
            box["task"] = loop.create_task(coro)
            box["value"] = loop.run_until_complete(box["task"])
        except BaseException as exc:  # handed to the caller's thread
            box["error"] = exc
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    thread = threading.Thread(target=main, name="pandas-llm-annotate", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.1)
    except KeyboardInterrupt:
        task = box.get("task")
        if task is not None and not loop.is_closed():
            loop.call_soon_threadsafe(task.cancel)
        thread.join()
        raise
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]
