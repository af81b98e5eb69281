"""Ctrl-C for the event loops mathagent runs.

`asyncio.run` (3.11+) cancels its main task from inside the SIGINT handler,
and Python runs a signal handler between any two bytecodes of the main
thread: also in the middle of asyncio's own callback that copies a worker
thread's result into its future. Cancelled there, between that callback's
check and its write, the callback fails with an AssertionError or
InvalidStateError printed as "Exception in callback _chain_future._set_state"
after a Ctrl-C. `run` has the first Ctrl-C schedule the cancel as a callback
of its own instead; a second Ctrl-C still stops at once, as asyncio's does.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Coroutine
from types import FrameType
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)`; Ctrl-C cancels `main` and raises KeyboardInterrupt here."""
    if threading.current_thread() is not threading.main_thread():
        return asyncio.run(main)  # only the main thread gets signals
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        return asyncio.run(main)  # the program handles Ctrl-C itself
    return asyncio.run(_cancelled_by_ctrl_c(main))


async def _cancelled_by_ctrl_c(main: Coroutine[Any, Any, T]) -> T:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    interrupted = False

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        nonlocal interrupted
        if interrupted or task.done():
            raise KeyboardInterrupt
        interrupted = True
        loop.call_soon_threadsafe(task.cancel)  # appends a callback and wakes the loop: safe from a handler

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        return await main
    except asyncio.CancelledError:
        if interrupted:
            raise KeyboardInterrupt from None
        raise
    finally:
        signal.signal(signal.SIGINT, previous)
