"""How a Lean process is confined: bubblewrap when it works, rlimits always.

bubblewrap gives the check no network, a read-only view of the system and the
toolchain, a private `/tmp`, a cleared environment, and ties its life to
ours (`--die-with-parent`). Every process also gets rlimits (no core dumps, a
CPU-time backstop, bounded file writes) and the parent-death signal, so even
the fallback leaves no Lean behind if mathagent itself is killed.
"""

from __future__ import annotations

import ctypes
import functools
import math
import os
import resource
import shutil
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mathagent.errors import ToolchainError
from mathagent.vocabulary import SandboxKind, SandboxMode

_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32")
_TMP_BYTES = 256 * 1024 * 1024
_FILE_BYTES = 256 * 1024 * 1024
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class SandboxedCommand:
    """An argv ready to run, with its environment and the sandbox it is in."""

    argv: list[str]
    env: dict[str, str]
    kind: SandboxKind
    preexec: Callable[[], None] | None  # to run between fork and exec (None: the argv sets its own limits)


@functools.lru_cache(maxsize=1)
def bwrap_path() -> str | None:
    return shutil.which("bwrap")


@functools.lru_cache(maxsize=1)
def prlimit_path() -> str | None:
    return shutil.which("prlimit") or next((p for p in ("/usr/bin/prlimit", "/bin/prlimit") if Path(p).is_file()), None)


@functools.lru_cache(maxsize=1)
def bwrap_works() -> tuple[bool, str]:
    """Can bubblewrap create the namespaces we ask for here? (cached per process)"""
    bwrap = bwrap_path()
    if bwrap is None:
        return False, "bwrap is not installed"
    argv = [bwrap, *_bwrap_args([], {"PATH": "/usr/bin:/bin"}), "--", "/bin/true"]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"bwrap failed to start: {exc}"
    if proc.returncode != 0:
        return False, f"bwrap cannot create a sandbox here: {proc.stderr.strip()[-200:]}"
    return True, "ok"


def choose(mode: str) -> SandboxKind:
    """Resolve `auto | bwrap | none` to the sandbox actually used."""
    try:
        asked = SandboxMode(mode)
    except ValueError:
        raise ToolchainError(f"unknown sandbox {mode!r}: one of {', '.join(SandboxMode)}") from None
    if asked == SandboxMode.NONE:
        return SandboxKind.RLIMITS
    ok, why = bwrap_works()
    if ok:
        return SandboxKind.BWRAP
    if asked == SandboxMode.BWRAP:
        raise ToolchainError(f"--sandbox bwrap was asked for but {why}", hint="apt-get install bubblewrap")
    return SandboxKind.RLIMITS


def wrap(
    argv: list[str],
    *,
    kind: SandboxKind,
    read_only: list[Path],
    env: dict[str, str],
    cpu_seconds: float,
    scratch: Path,
    outputs: Path | None = None,
) -> SandboxedCommand:
    """Wrap `argv` for `kind` (bubblewrap, or rlimits only).

    `scratch` is the working folder for the rlimits fallback (bwrap gets a
    private tmpfs instead). `outputs` is a folder Lean may write files into
    that we read afterwards (under bwrap, the only writable host folder).
    """
    base_env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8", **env}
    preexec = functools.partial(_limit_child, math.ceil(cpu_seconds))
    if kind == SandboxKind.BWRAP:
        bwrap = bwrap_path()
        if bwrap is None:  # the check in choose() ran in this process, so only a race gets here
            raise ToolchainError("bwrap disappeared")
        full = [bwrap, *_bwrap_args(read_only, base_env, outputs), "--", *argv]
        prlimit = prlimit_path()
        if prlimit is not None:
            # Limits set by `prlimit` rather than Python code between fork and exec: with no such
            # code Python starts the process with vfork, about 1 ms instead of 8 ms of a blocked
            # event loop per check. (bwrap's --die-with-parent does what the prctl would.)
            cpu = math.ceil(cpu_seconds)
            limits = ["--core=0", f"--fsize={_FILE_BYTES}", f"--cpu={cpu}:{cpu + 5}"]
            return SandboxedCommand(argv=[prlimit, *limits, "--", *full], env={}, kind=SandboxKind.BWRAP, preexec=None)
        return SandboxedCommand(argv=full, env={}, kind=SandboxKind.BWRAP, preexec=preexec)
    fallback_env = {**base_env, "HOME": str(scratch), "TMPDIR": str(scratch)}
    return SandboxedCommand(argv=argv, env=fallback_env, kind=SandboxKind.RLIMITS, preexec=preexec)


def _bwrap_args(read_only: list[Path], env: dict[str, str], outputs: Path | None = None) -> list[str]:
    args = [*_mounts(tuple(read_only))]
    if outputs is not None:
        args += ["--bind", str(outputs.resolve()), str(outputs)]
    for key, value in env.items():
        args += ["--setenv", key, value]
    args += ["--chdir", "/tmp"]
    return args


@functools.lru_cache(maxsize=16)
def _mounts(read_only: tuple[Path, ...]) -> tuple[str, ...]:
    """The namespaces and the read-only view of the system and the toolchain: the
    same for every check of a run, and a few dozen file-system calls to work out
    (about 1 ms a check), so worked out once."""
    args = [
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
        "--cap-drop",
        "ALL",
    ]
    for d in _SYSTEM_DIRS:
        p = Path(d)
        if p.is_symlink():
            args += ["--symlink", os.readlink(p), d]
        elif p.is_dir():
            args += ["--ro-bind", d, d]
    args += ["--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    args += ["--ro-bind-try", "/etc/localtime", "/etc/localtime"]  # the language server's watchdog reads it
    args += ["--proc", "/proc", "--dev", "/dev"]
    args += ["--size", str(_TMP_BYTES), "--tmpfs", "/tmp"]
    for path in read_only:
        resolved = str(path.resolve())
        args += ["--ro-bind", resolved, resolved]
        if str(path) != resolved:
            args += ["--ro-bind", resolved, str(path)]
    return tuple(args)


def _limit_child(cpu_seconds: int) -> None:
    """Runs in the child between fork and exec."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except OSError:
        pass
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (_FILE_BYTES, _FILE_BYTES))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 5))
