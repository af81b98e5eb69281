"""JSONL in and out: read rows without losing the good ones to a bad one,
and append results so that a crash never leaves half a line behind."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mathagent.errors import InputError

# Lone surrogates: what a JSON `"\ud800"` escape decodes to. No UTF-8 writer takes them.
_SURROGATE = re.compile("[\ud800-\udfff]")


def dumps(value: Any, *, indent: int | None = None) -> str:
    """JSON text that stays on its line for every reader: readable UTF-8, but
    U+0085, U+2028 and U+2029 escaped (JavaScript and `str.splitlines` break
    lines there; json escapes the other line breaks, being control characters).
    Lone surrogates (a client's `"\\ud800"`) are written back as the same escape,
    so the text can always be encoded as UTF-8 and still reads as the value it was."""
    text = json.dumps(value, ensure_ascii=False, indent=indent)
    text = text.replace("\u0085", "\\u0085").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


class BadJSON(ValueError):
    """Text that is not one JSON value mathagent can read; `str()` says why, for people."""


def parse_json(data: bytes | str) -> Any:
    """`json.loads`, with every way it can fail (bad syntax, bytes that are not
    text, nesting deeper than Python's stack, a 5,000-digit number) as BadJSON."""
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        where = f"column {exc.colno}" if exc.lineno == 1 else f"line {exc.lineno} column {exc.colno}"
        raise BadJSON(f"{exc.msg.removesuffix(' at')} at {where}") from None  # ("...starting at")
    except UnicodeDecodeError as exc:
        raise BadJSON(f"not UTF-8: byte {exc.object[exc.start]:#04x} at offset {exc.start}") from None
    except RecursionError:
        # the C decoder unwinds cleanly: this is a property of the input, not a broken interpreter
        limit = sys.getrecursionlimit()
        raise BadJSON(f"arrays and objects nested too deeply (at most about {limit} levels)") from None
    except ValueError as exc:  # what json raises itself beyond syntax, e.g. an integer over 4300 digits
        raise BadJSON(str(exc).split(";", 1)[0]) from None  # without Python's advice to the programmer


def unencodable(text: str) -> str | None:
    """Why `text` cannot be sent as UTF-8 (to Lean, to a file), or None when it can."""
    found = _SURROGATE.search(text)
    if found is None:
        return None
    return f"a lone surrogate U+{ord(found.group()):04X} at character {found.start() + 1} (not valid Unicode)"


@dataclass(frozen=True)
class Row:
    """One line of a JSONL file: its decoded value, or why it has none."""

    number: int  # 1-based line number
    source: str  # "file:line", for messages
    default_id: str  # "name:line", an id for rows that carry none
    value: Any = None
    error: str | None = None


_BOM = b"\xef\xbb\xbf"


def read_rows(path: Path) -> Iterator[Row]:
    """Every line of `path` as a Row; bad lines carry an error, never raise.

    Raises InputError only when the file itself cannot be read.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return rows_from_bytes(data, source=f"{path}:", default_id=f"{path.name}:")


def rows_from_bytes(data: bytes, *, source: str, default_id: str) -> Iterator[Row]:
    """Every line of JSONL `data` as a Row; line N is `{source}N` in messages, `{default_id}N` as an id."""
    # Notepad, PowerShell and Excel start UTF-8 files with a byte-order mark: not part of the first row
    lines = data.removeprefix(_BOM).split(b"\n")
    if lines and lines[-1].strip() == b"":
        lines.pop()  # the newline that ends the last row is not a row
    for number, raw in enumerate(lines, start=1):
        row = Row(number, f"{source}{number}", f"{default_id}{number}")
        raw = raw.rstrip(b"\r")
        if not raw.strip():
            yield replace(row, error="empty line")
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield replace(row, error=f"not UTF-8: byte {raw[exc.start]:#04x} at column {exc.start + 1}")
            continue
        try:
            value = parse_json(text)
        except BadJSON as exc:
            yield replace(row, error=f"invalid JSON: {exc}")
            continue
        yield replace(row, value=value)


def first_field(row: dict[str, Any], keys: tuple[str, ...]) -> tuple[str | None, Any]:
    """(key, value) of the first of `keys` present with a non-null value."""
    for key in keys:
        if row.get(key) is not None:
            return key, row[key]
    return None, None


class AppendLog:
    """A JSONL file results are appended to, one complete line per write.

    Opening it repairs a torn last line (left by a kill mid-write) by cutting
    it off, so the file always holds whole rows, and returns the rows already
    there, by id, for resuming.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def open(self) -> dict[str, dict[str, Any]]:
        """Open for appending; return the rows already written, by id."""
        done: dict[str, dict[str, Any]] = {}
        try:
            data = self.path.read_bytes() if self.path.exists() else b""
        except OSError as exc:
            raise InputError(f"cannot read {self.path}: {exc.strerror or exc}") from exc
        keep = data.rfind(b"\n") + 1  # everything after the last newline is a torn write
        for line in data[:keep].splitlines():
            try:
                row = parse_json(line)
            except BadJSON:
                continue
            if isinstance(row, dict) and isinstance(row.get("id"), str):
                done[row["id"]] = row
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            if keep < len(data):
                os.ftruncate(self._fd, keep)
        except OSError as exc:
            raise InputError(f"cannot write {self.path}: {exc.strerror or exc}") from exc
        return done

    def drop(self, ids: set[str]) -> None:
        """Remove the rows with these ids (to redo them), rewriting the file atomically."""
        if not ids:
            return
        self.close()
        kept = []
        for line in self.path.read_bytes().splitlines(keepends=True):
            try:
                row = parse_json(line)
            except BadJSON:
                continue
            if not (isinstance(row, dict) and row.get("id") in ids):
                kept.append(line)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_bytes(b"".join(kept))
        os.replace(tmp, self.path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)

    def append(self, row: dict[str, Any]) -> None:
        if self._fd is None:
            raise RuntimeError("AppendLog.append before open")
        line = (dumps(row) + "\n").encode("utf-8")
        os.write(self._fd, line)  # one write of a whole line: O_APPEND keeps it in one piece
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
