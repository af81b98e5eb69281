"""Ctrl-C through `mathagent.interrupts.run`: the main coroutine is cancelled
by a loop callback of its own, cleans up, and KeyboardInterrupt comes out."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest

from mathagent import interrupts


@pytest.fixture(autouse=True)
def default_ctrl_c() -> Iterator[None]:
    """Python's own Ctrl-C handler, which a program started from a terminal has. A
    pytest started in the background by a shell inherits an ignored SIGINT, and
    these tests would then wait forever for a Ctrl-C that never arrives."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _ctrl_c_after(seconds: float, running: threading.Event | None = None) -> threading.Thread:
    """Press Ctrl-C `seconds` after `running` is set (by the coroutine: a loaded
    machine may take longer than that to start it), or after `seconds`."""

    def press() -> None:
        if running is not None:
            running.wait(timeout=60)
        time.sleep(seconds)
        os.kill(os.getpid(), signal.SIGINT)

    presser = threading.Thread(target=press)
    presser.start()
    return presser


def test_ctrl_c_cancels_the_main_coroutine_and_raises_keyboard_interrupt(caplog: pytest.LogCaptureFixture) -> None:
    cleaned: list[str] = []

    running = threading.Event()

    async def busy() -> None:
        running.set()

        async def one(i: int) -> None:
            while True:  # threads finishing all the time: the callbacks the old handler could land in
                await asyncio.to_thread(lambda: (i, i))

        try:
            await asyncio.gather(*(one(i) for i in range(16)))
        finally:
            cleaned.append("main")

    caplog.set_level(logging.ERROR, logger="asyncio")
    for _ in range(20):
        running.clear()
        presser = _ctrl_c_after(0.02, running)
        with pytest.raises(KeyboardInterrupt):
            interrupts.run(busy())
        presser.join()
    assert cleaned == ["main"] * 20
    assert not [r for r in caplog.records if r.name == "asyncio"], caplog.text
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_coroutine_that_handles_the_cancel_returns_its_value() -> None:
    running = threading.Event()

    async def stops_cleanly() -> str:
        running.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            return "stopped"
        return "slept"

    presser = _ctrl_c_after(0.05, running)
    assert interrupts.run(stops_cleanly()) == "stopped"
    presser.join()


def test_a_second_ctrl_c_stops_a_coroutine_that_ignores_the_first() -> None:
    running = threading.Event()

    async def stubborn() -> None:
        running.set()
        while True:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                os.kill(os.getpid(), signal.SIGINT)  # the user presses again

    presser = _ctrl_c_after(0.05, running)
    with pytest.raises(KeyboardInterrupt):
        interrupts.run(stubborn())
    presser.join()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_program_with_its_own_ctrl_c_handler_keeps_it() -> None:
    heard: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: heard.append(signum))
    try:
        running = threading.Event()

        async def sleeps() -> str:
            running.set()
            while not heard:  # until the program's handler has heard the Ctrl-C
                await asyncio.sleep(0.01)
            return "done"

        presser = _ctrl_c_after(0.05, running)
        assert interrupts.run(sleeps()) == "done"
        presser.join()
        assert heard == [signal.SIGINT]
    finally:
        signal.signal(signal.SIGINT, previous)


def test_outside_the_main_thread_it_is_asyncio_run() -> None:
    out: list[int] = []

    async def answer() -> int:
        return 42

    worker = threading.Thread(target=lambda: out.append(interrupts.run(answer())))
    worker.start()
    worker.join()
    assert out == [42]
