"""Verdicts remembered by content hash, so the same check never runs twice.

The key covers everything that can change a verdict: the Lean build, the
compiled modules a check can import (`fingerprint.py`), the header,
statement and proof text, the allowed axioms and native code, the options
passed to Lean, and the verifier's own code. Only final verdicts (verified, rejected)
are kept; timeouts and errors may pass on a retry and are not.
"""

from __future__ import annotations

import functools
import hashlib
import json
import sqlite3
import time
from pathlib import Path

from mathagent.verify.verdict import Verdict, VerdictKind


# The code that decides a verdict: every module of the verifier (the judge and the
# audit, and how Lean's messages and declarations are gathered, cold and warm). Any
# change to one invalidates every cached verdict, so an upgrade never serves a
# verdict it would not give.
@functools.lru_cache(maxsize=1)
def logic_version() -> str:
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def cache_key(*parts: object) -> str:
    blob = json.dumps([logic_version(), *parts], sort_keys=True, ensure_ascii=False)
    # surrogatepass: a lone surrogate (from a JSON `"\ud800"`) gets bytes of its own, so a key never fails
    # and two texts that differ only there keep two keys; valid text encodes exactly as plain UTF-8
    return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()


class VerdictCache:
    """A small SQLite table: key -> verdict JSON."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS verdicts (key TEXT PRIMARY KEY, verdict TEXT NOT NULL, created "
                "REAL NOT NULL)"
            )
            self._db = db
        return self._db

    def get(self, key: str) -> Verdict | None:
        row = self._conn().execute("SELECT verdict FROM verdicts WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        try:
            return Verdict.from_dict(json.loads(row[0]))
        except (ValueError, TypeError):
            return None  # written by an incompatible version: just recheck

    def put(self, key: str, verdict: Verdict) -> None:
        if verdict.verdict not in (VerdictKind.VERIFIED, VerdictKind.REJECTED):
            return
        self._conn().execute(
            "INSERT OR REPLACE INTO verdicts (key, verdict, created) VALUES (?, ?, ?)",
            (key, verdict.to_json(), time.time()),
        )

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
