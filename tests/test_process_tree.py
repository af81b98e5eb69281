"""The process-tree reader that memory caps and kills rely on, and what a kill leaves to wait for."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from mathagent.verify import process as process_module
from mathagent.verify import sandbox
from mathagent.verify.process import descendants, kill_tree
from mathagent.vocabulary import SandboxKind


@pytest.fixture
def tree() -> Iterator[subprocess.Popen[bytes]]:
    """A shell whose descendants go three levels deep (five processes below it)."""
    proc = subprocess.Popen(["bash", "-c", "sleep 30 & (sleep 30 & (sleep 30 & wait) & wait) & wait"])
    deadline = time.monotonic() + 10
    while len(psutil.Process(proc.pid).children(recursive=True)) < 5 and time.monotonic() < deadline:
        time.sleep(0.02)
    yield proc
    kill_tree(proc.pid)
    proc.wait()


def test_descendants_are_the_same_processes_psutil_finds(tree: subprocess.Popen[bytes]) -> None:
    ours = sorted(p.pid for p in descendants(tree.pid))
    assert len(ours) == 5
    assert ours == sorted(p.pid for p in psutil.Process(tree.pid).children(recursive=True))


def test_kill_tree_leaves_no_descendant(tree: subprocess.Popen[bytes]) -> None:
    below = descendants(tree.pid)
    kill_tree(tree.pid)
    tree.wait(timeout=10)
    _, alive = psutil.wait_procs(below, timeout=10)
    assert not alive


def test_a_finished_process_has_no_descendants() -> None:
    proc = subprocess.Popen(["true"])
    proc.wait()
    assert descendants(proc.pid) == []


def test_a_timed_out_check_whose_pipe_outlives_its_tree_is_still_answered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without bubblewrap a double fork leaves the tree and keeps the check's stdout open:
    # the timed-out check waited for that pipe to close (here 60 s), now REAP_S at most.
    monkeypatch.setattr(process_module, "REAP_S", 2.0)
    marker = f"{60 + os.getpid() % 1000 / 1000:.3f}"  # this test's own `sleep`, to find and stop
    command = sandbox.wrap(
        ["/bin/sh", "-c", f"(setsid sleep {marker} &); sleep 100"],
        kind=SandboxKind.RLIMITS,
        read_only=[],
        env={},
        cpu_seconds=30,
        scratch=tmp_path,
    )
    started = time.monotonic()
    try:
        result = asyncio.run(process_module.run_process(command, "", timeout_s=1, memory_mb=None, cwd=str(tmp_path)))
        took = time.monotonic() - started
    finally:
        _stop_sleep(marker)
    assert result.timed_out
    assert took < 10, took


def test_reaping_gives_up_on_pipes_held_outside_the_tree(monkeypatch: pytest.MonkeyPatch) -> None:
    # closing a server or a REPL whose pipes a double fork kept open
    monkeypatch.setattr(process_module, "REAP_S", 1.0)
    marker = f"{61 + os.getpid() % 1000 / 1000:.3f}"

    async def go() -> float:
        proc = await process_module.spawn(
            "/bin/sh",
            "-c",
            f"(setsid sleep {marker} &); sleep 100",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        await asyncio.sleep(0.3)
        kill_tree(proc.pid)
        started = time.monotonic()
        await process_module.reap(proc)
        return time.monotonic() - started

    try:
        took = asyncio.run(go())
    finally:
        _stop_sleep(marker)
    assert took < 5, took


def _stop_sleep(marker: str) -> None:
    for p in psutil.process_iter(["cmdline"]):
        if p.info["cmdline"] == ["sleep", marker]:
            p.kill()
