"""The process-tree reader that memory caps and kills rely on."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import psutil
import pytest

from mathagent.verify.process import descendants, kill_tree


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
