"""`mathagent lean setup`: the pinned Lean and Mathlib's build cache, via elan and Lake.

Every precondition is checked before anything is downloaded, so a machine
without elan or network gets one clear sentence, not a half-done install.
"""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
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
class Missing:
    """A precondition setup needs and does not have, and how to get it."""

    what: str
    fix: str


@dataclass(frozen=True)
class Plan:
    project: Path
    steps: list[Step]
    missing: list[Missing] = field(default_factory=list)  # only on a dry run: a real one raises instead


def plan(project: Path | None, *, dry_run: bool = False) -> Plan:
    """The commands setup will run, after checking it can run them.

    Raises SetupError at the first missing precondition (elan, network), so
    nothing is half done; a dry run instead checks them all and returns them
    in `missing`, with the commands it would run.
    """
    if project is None or not (project / "lakefile.lean").is_file():
        raise SetupError(
            "no Lake project to set up (no lakefile.lean here or above)",
            hint="run this from a mathagent checkout, or pass --project PATH",
        )
    pin_file = project / "lean-toolchain"
    if not pin_file.is_file():
        raise SetupError(f"{pin_file} is missing: it names the Lean release to install")
    pin = pin_file.read_text(encoding="utf-8").strip()
    missing: list[Missing] = []

    def lacking(what: str, fix: str) -> None:
        if not dry_run:
            raise SetupError(what, hint=fix)
        missing.append(Missing(what, fix))

    elan = find_tool("elan")
    if elan is None:
        lacking("elan (the Lean toolchain manager) is not installed", f"install it with: {ELAN_INSTALL}")
    unreachable = [f"{host}:{port}" for host, port in _HOSTS if not reachable(host, port)]
    if unreachable:
        lacking(
            f"no network: cannot reach {', '.join(unreachable)}; setup downloads Lean {pin} and Mathlib's build cache",
            "run it on a machine with internet access, or point mathagent at an existing Lean with --lean PATH",
        )
    lake = find_tool("lake") or (elan.parent / "lake" if elan else Path("lake"))
    return Plan(
        project=project,
        steps=[
            Step(f"install {pin}", [str(elan or "elan"), "toolchain", "install", pin]),
            Step("download Mathlib's build cache", [str(lake), "exe", "cache", "get"]),
            Step("build the header module", [str(lake), "build", "MathAgent"]),
        ],
        missing=missing,
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
