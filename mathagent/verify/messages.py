"""Lean's `--json` output, one message per line, parsed into plain records."""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True)
class LeanMessage:
    """A message exactly as Lean reported it, in the assembled file's lines."""

    severity: str
    line: int
    column: int
    end_line: int | None
    end_column: int | None
    text: str
    kind: str = ""


@dataclass(frozen=True)
class LeanOutput:
    messages: list[LeanMessage]
    stray_lines: list[str]  # stdout lines that were not Lean messages

    @property
    def has_errors(self) -> bool:
        return any(m.severity == "error" for m in self.messages)


def parse_output(stdout: str) -> LeanOutput:
    """Parse `lean --json` stdout. Lines that are not messages are kept aside.

    Lean ends each JSON message with `\n` and escapes newlines inside it, so
    only `\n` separates messages (`str.splitlines` would also split at
    U+2028 and other characters a message may contain raw)."""
    messages: list[LeanMessage] = []
    stray: list[str] = []
    for raw in stdout.split("\n"):
        if not raw.strip():
            continue
        message = _parse_line(raw)
        if message is None:
            stray.append(raw)
        else:
            messages.append(message)
    return LeanOutput(messages=messages, stray_lines=stray)


def _parse_line(raw: str) -> LeanMessage | None:
    try:
        obj = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(obj, dict) or "severity" not in obj or "data" not in obj:
        return None
    pos = obj.get("pos") or {}
    end = obj.get("endPos") or {}
    try:
        return LeanMessage(
            severity=str(obj["severity"]),
            line=int(pos.get("line", 0)),
            column=int(pos.get("column", 0)),
            end_line=int(end["line"]) if "line" in end else None,
            end_column=int(end["column"]) if "column" in end else None,
            text=str(obj["data"]),
            kind=str(obj.get("kind") or ""),
        )
    except (TypeError, ValueError):
        return None
