"""Run the async core from sync code: scripts, and Jupyter's already-running loop."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable, Coroutine, Iterator
from types import FrameType
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


class _CtrlC:
    pressed = False


@contextlib.contextmanager
def _first_ctrl_c_cancels(cancel: Callable[[], object]) -> Iterator[_CtrlC]:
    """While a sync run blocks the main thread inside a running loop, the first Ctrl-C
    calls `cancel` (the run stops at its next await, keeps its cache and report); a
    second one raises KeyboardInterrupt at once.

    Needed because `asyncio.run`'s own SIGINT handler only cancels its main task, and
    that task is the one blocked in this call: the first Ctrl-C took effect only when
    the run had ended. Only that handler and Python's default one are replaced (for the
    call's length); an ignored SIGINT or a handler of the user's own is left alone.
    """
    state = _CtrlC()
    previous = signal.getsignal(signal.SIGINT)
    runner = getattr(asyncio, "Runner", None)  # Python 3.11+; its handler is a partial
    bound = getattr(previous, "func", previous)
    ours = previous is signal.default_int_handler or (
        runner is not None and isinstance(getattr(bound, "__self__", None), runner))
    if threading.current_thread() is not threading.main_thread() or not ours:
        yield state
        return

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        if state.pressed:
            raise KeyboardInterrupt
        state.pressed = True
        cancel()

    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield state
    finally:
        signal.signal(signal.SIGINT, previous)


def _run_nested(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
    task = asyncio.ensure_future(coro, loop=loop)
    with _first_ctrl_c_cancels(lambda: loop.call_soon_threadsafe(task.cancel)) as ctrl_c:
        try:
            return loop.run_until_complete(task)
        except KeyboardInterrupt:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                loop.run_until_complete(task)
            raise
        except asyncio.CancelledError:
            if ctrl_c.pressed:
                raise KeyboardInterrupt from None
            raise


def _run_in_thread(coro: Coroutine[Any, Any, T]) -> T:
    box: dict[str, Any] = {}
    loop = asyncio.new_event_loop()
    task = loop.create_task(coro)

    def main() -> None:
        asyncio.set_event_loop(loop)
        try:
            box["value"] = loop.run_until_complete(task)
        except BaseException as exc:  # handed to the caller's thread
            box["error"] = exc
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def cancel() -> None:
        if not loop.is_closed():
            loop.call_soon_threadsafe(task.cancel)

    thread = threading.Thread(target=main, name="pandas-llm-annotate", daemon=True)
    with _first_ctrl_c_cancels(cancel) as ctrl_c:
        thread.start()
        try:
            while thread.is_alive():
                thread.join(0.1)
        except KeyboardInterrupt:
            cancel()
            thread.join()
            raise
    if "error" in box:
        if ctrl_c.pressed and isinstance(box["error"], asyncio.CancelledError):
            raise KeyboardInterrupt from None
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]
