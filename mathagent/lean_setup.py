"""`mathagent lean setup`: the pinned Lean and Mathlib's build cache, via elan and Lake.

Every precondition is checked before anything is downloaded, so a machine
without elan or network gets one clear sentence, not a half-done install.
"""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mathagent.errors import SetupError
from mathagent.verify.toolchain import find_tool

ELAN_INSTALL = "curl https://elan.lean-lang.org/elan-init.sh -sSf | sh -s -- -y --default-toolchain none"
_HOSTS = (("github.com", 443), ("releases.lean-lang.org", 443))


@dataclass(frozen=True)
class Step:
    title: str
    argv: list[str]


@dataclass(frozen=True)
class Plan:
    project: Path
    steps: list[Step]


def plan(project: Path | None) -> Plan:
    """The commands setup will run, after checking it can run them."""
    if project is None or not (project / "lakefile.lean").is_file():
        raise SetupError(
            "no Lake project to set up (no lakefile.lean here or above)",
            hint="run this from a mathagent checkout, or pass --project PATH",
        )
    pin_file = project / "lean-toolchain"
    if not pin_file.is_file():
        raise SetupError(f"{pin_file} is missing: it names the Lean release to install")
    pin = pin_file.read_text(encoding="utf-8").strip()
    elan = find_tool("elan")
    if elan is None:
        raise SetupError("elan (the Lean toolchain manager) is not installed", hint=f"install it with: {ELAN_INSTALL}")
    unreachable = [f"{host}:{port}" for host, port in _HOSTS if not reachable(host, port)]
    if unreachable:
        raise SetupError(
            f"no network: cannot reach {', '.join(unreachable)}; setup downloads Lean {pin} and Mathlib's build cache",
            hint="run it on a machine with internet access, or point mathagent at an existing Lean with --lean PATH",
        )
    lake = find_tool("lake") or elan.parent / "lake"
    return Plan(
        project=project,
        steps=[
            Step(f"install {pin}", [str(elan), "toolchain", "install", pin]),
            Step("download Mathlib's build cache", [str(lake), "exe", "cache", "get"]),
            Step("build the header module", [str(lake), "build", "MathAgent"]),
        ],
    )


def run(todo: Plan, announce: Callable[[Step], None]) -> None:
    """Run each step in the project, streaming its output; stop at the first failure."""
    for step in todo.steps:
        announce(step)
        try:
            proc = subprocess.run(step.argv, cwd=todo.project)
        except OSError as exc:
            raise SetupError(f"{step.title} failed: cannot run {step.argv[0]}: {exc}") from exc
        if proc.returncode != 0:
            raise SetupError(f"{step.title} failed (exit status {proc.returncode}): see the output above")


def reachable(host: str, port: int, timeout_s: float = 5.0) -> bool:
    """Can we open a TCP connection to host:port within the timeout (DNS included)?"""
    result: list[bool] = []

    def attempt() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                result.append(True)
        except OSError:
            result.append(False)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout_s + 1)  # getaddrinfo has no timeout of its own
    return bool(result and result[0])
