"""Ctrl-C through `mathagent.interrupts.run`: the main coroutine is cancelled
by a loop callback of its own, cleans up, and KeyboardInterrupt comes out."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading

import pytest

from mathagent import interrupts


def _ctrl_c_after(seconds: float) -> threading.Timer:
    timer = threading.Timer(seconds, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    return timer


def test_ctrl_c_cancels_the_main_coroutine_and_raises_keyboard_interrupt(caplog: pytest.LogCaptureFixture) -> None:
    cleaned: list[str] = []

    async def busy() -> None:
        async def one(i: int) -> None:
            while True:  # threads finishing all the time: the callbacks the old handler could land in
                await asyncio.to_thread(lambda: (i, i))

        try:
            await asyncio.gather(*(one(i) for i in range(16)))
        finally:
            cleaned.append("main")

    caplog.set_level(logging.ERROR, logger="asyncio")
    for _ in range(20):
        timer = _ctrl_c_after(0.02)
        with pytest.raises(KeyboardInterrupt):
            interrupts.run(busy())
        timer.join()
    assert cleaned == ["main"] * 20
    assert not [r for r in caplog.records if r.name == "asyncio"], caplog.text
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_coroutine_that_handles_the_cancel_returns_its_value() -> None:
    async def stops_cleanly() -> str:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            return "stopped"
        return "slept"

    timer = _ctrl_c_after(0.1)
    assert interrupts.run(stops_cleanly()) == "stopped"
    timer.join()


def test_a_second_ctrl_c_stops_a_coroutine_that_ignores_the_first() -> None:
    async def stubborn() -> None:
        while True:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                os.kill(os.getpid(), signal.SIGINT)  # the user presses again

    timer = _ctrl_c_after(0.1)
    with pytest.raises(KeyboardInterrupt):
        interrupts.run(stubborn())
    timer.join()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_program_with_its_own_ctrl_c_handler_keeps_it() -> None:
    heard: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: heard.append(signum))
    try:

        async def sleeps() -> str:
            await asyncio.sleep(0.3)
            return "done"

        timer = _ctrl_c_after(0.05)
        assert interrupts.run(sleeps()) == "done"
        timer.join()
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
