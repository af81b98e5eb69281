"""Run many small files through the real Lean and read back what it saw.

Used by the differential lexer tests: every file is checked with
`lean --json -i OUT.ilean FILE.lean`, which prints one JSON message per line
and, only when the file has no error, writes the `.ilean` index whose `decls`
names every declaration the file made.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LeanRun:
    source: str
    messages: tuple[dict, ...]
    decls: frozenset[str] | None  # None: Lean wrote no .ilean (the file had an error)

    @property
    def errors(self) -> list[dict]:
        return [m for m in self.messages if m.get("severity") == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors and self.decls is not None

    def at_line(self, line: int, severity: str | None = None) -> list[dict]:
        """Messages whose position is on 1-based `line`."""
        return [
            m for m in self.messages if m["pos"]["line"] == line and (severity is None or m["severity"] == severity)
        ]


def run_lean(
    lean: Path, sources: Sequence[str], *, workers: int = 2, timeout_s: float = 60, max_errors: int = 100
) -> list[LeanRun]:
    """Check every source (one file each), `workers` Lean processes at a time, in order.

    Lean stops a file after `max_errors` errors (its `maxErrors` option, which only
    works from the command line)."""
    with tempfile.TemporaryDirectory(prefix="lexdiff-") as tmp:
        folder = Path(tmp)

        def one(index: int) -> LeanRun:
            src = folder / f"f{index}.lean"
            ilean = folder / f"f{index}.ilean"
            # newline="" keeps "\r\n" and lone "\r" exactly as generated
            with open(src, "w", encoding="utf-8", newline="") as fh:
                fh.write(sources[index])
            proc = subprocess.run(
                [str(lean), f"-DmaxErrors={max_errors}", "--json", "-i", str(ilean), str(src)],
                capture_output=True,
                text=True,
                encoding="utf-8",
                errors="replace",
                timeout=timeout_s,
                cwd=folder,
                check=False,
            )
            messages = tuple(json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{"))
            decls = None
            if ilean.exists():
                decls = frozenset(json.loads(ilean.read_text(encoding="utf-8")).get("decls", {}))
            if proc.returncode not in (0, 1) or (proc.returncode != 0 and not messages):
                raise RuntimeError(f"lean exited {proc.returncode} on {sources[index]!r}: {proc.stderr[-2000:]}")
            return LeanRun(sources[index], messages, decls)

        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(one, range(len(sources))))
