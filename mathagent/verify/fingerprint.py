"""One digest of the compiled modules a check can import (every `.olean` on LEAN_PATH).

A verdict holds for the modules it was checked against. The same header and
proof, importing a module that was rebuilt since (a lemma turned into an
axiom, a definition changed) or another project's module of the same name,
can get another verdict; so the verdict cache's key includes this digest of
each module's path, size, modification and change times and inode (a copy
that keeps the modification time, as `cp -p`, `rsync -a` or `tar` make,
still has a new change time), and a warm server started
before a rebuild is not reused after it. The toolchain's own library (Init,
Std, Lean) goes with the Lean binary, which the key names already.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Iterable

# How long a digest is trusted before the folders are walked again: a long-running
# service notices a rebuild this soon; a command computes it once.
REFRESH_S = 10.0


def modules_digest(roots: Iterable[str]) -> str:
    """A digest of every `.olean` under `roots`: relative path, size, times and inode."""
    digest = hashlib.blake2b(digest_size=16)
    for root in roots:
        digest.update(b"\0root\0" + os.fsencode(root))
        for relative, *numbers in sorted(_modules(root)):
            digest.update(os.fsencode(relative) + b"".join(b"\0%d" % n for n in numbers) + b"\n")
    return digest.hexdigest()


def _modules(root: str) -> Iterable[tuple[str, int, int, int, int]]:
    """(path relative to `root`, size, mtime, ctime, inode) of each `.olean` below it;
    folders reached through symbolic links are not entered (no cycles), files are followed."""
    stack = [""]
    while stack:
        relative = stack.pop()
        try:
            entries = list(os.scandir(os.path.join(root, relative)))
        except OSError:
            continue
        for entry in entries:
            name = os.path.join(relative, entry.name)
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(name)
                elif entry.name.endswith(".olean"):
                    stat = entry.stat()
                    yield name, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino
            except OSError:
                continue


class ModulesFingerprint:
    """The current digest of `roots`, walked again when older than `refresh_s`, off the
    event loop (Mathlib is thousands of files), one walk at a time."""

    def __init__(self, roots: Iterable[str], refresh_s: float | None = None) -> None:
        self.roots = tuple(r for r in roots if r)
        self.refresh_s = REFRESH_S if refresh_s is None else refresh_s
        self._value: str | None = None
        self._taken = 0.0
        self._walk: asyncio.Task[str] | None = None

    async def current(self) -> str:
        if not self.roots:
            return ""
        if self._value is not None and time.monotonic() - self._taken < self.refresh_s:
            return self._value
        if self._walk is None or self._walk.done():
            self._walk = asyncio.ensure_future(asyncio.to_thread(modules_digest, self.roots))
            started = time.monotonic()
            self._walk.add_done_callback(lambda walk: self._keep(walk, started))
        # shielded: one caller cancelled must not cancel the walk the others wait on
        return await asyncio.shield(self._walk)

    def _keep(self, walk: asyncio.Task[str], started: float) -> None:
        if not walk.cancelled() and walk.exception() is None:
            self._value, self._taken = walk.result(), started
