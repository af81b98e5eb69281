"""The sandbox the verifier runs Lean in is really applied."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from mathagent.verify import sandbox
from mathagent.verify.process import ProcessResult, run_process
from mathagent.verify.toolchain import LeanToolchain

pytestmark = pytest.mark.skipif(not sandbox.bwrap_works()[0], reason="bubblewrap cannot create a sandbox here")


def run_in_sandbox(lean: LeanToolchain, tmp_path: Path, script: str, kind: str = "bwrap") -> ProcessResult:
    command = sandbox.wrap(
        ["/bin/sh", "-c", script],
        kind=kind,
        read_only=lean.read_only_paths(),
        env={"LEAN_PATH": "/nowhere"},
        cpu_seconds=30,
        scratch=tmp_path,
    )
    return asyncio.run(run_process(command, "", timeout_s=30, memory_mb=None, cwd=str(tmp_path)))


def test_no_network_inside(lean: LeanToolchain, tmp_path: Path) -> None:
    result = run_in_sandbox(lean, tmp_path, "ls /sys/class/net 2>/dev/null || cat /proc/net/dev")
    interfaces = result.stdout.split()
    assert "lo" in interfaces or "lo:" in result.stdout
    assert not any(name.startswith(("eth", "ens", "enp", "veth", "wl")) for name in interfaces), result.stdout


def test_environment_is_cleared(lean: LeanToolchain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MATHAGENT_SECRET_TOKEN", "hunter2")
    result = run_in_sandbox(lean, tmp_path, "env")
    assert "hunter2" not in result.stdout
    assert "LEAN_PATH=/nowhere" in result.stdout


def test_toolchain_is_read_only_and_home_is_hidden(lean: LeanToolchain, tmp_path: Path) -> None:
    target = lean.lean.parent / "sandbox-write-test"
    result = run_in_sandbox(lean, tmp_path, f"touch {target}; echo rc=$?; ls {Path.home()} 2>&1 | head -1")
    assert "rc=0" not in result.stdout
    assert not target.exists()
    assert "No such file" in result.stdout or result.stdout.strip().endswith("rc=1")


def test_tmp_is_private_and_writable(lean: LeanToolchain, tmp_path: Path) -> None:
    marker = Path("/tmp") / f"mathagent-sandbox-{os.getpid()}"
    result = run_in_sandbox(lean, tmp_path, f"echo hi > {marker} && cat {marker}")
    assert result.stdout.strip() == "hi"
    assert not marker.exists()  # written to the sandbox's own /tmp


def test_processes_outside_are_invisible(lean: LeanToolchain, tmp_path: Path) -> None:
    result = run_in_sandbox(lean, tmp_path, "ls /proc | grep -c '^[0-9]'")
    assert int(result.stdout.strip()) < 5  # only the sandbox's own processes


def test_fallback_has_rlimits(lean: LeanToolchain, tmp_path: Path) -> None:
    result = run_in_sandbox(lean, tmp_path, "ulimit -c; ulimit -t", kind="rlimits")
    core, cpu = result.stdout.split()
    assert core == "0" and cpu == "30"
