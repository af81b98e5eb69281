"""Reading tasks: the field's JSONL formats as they are, and bad rows as data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mathagent.errors import InputError
from mathagent.verify.tasks import BadRow, VerifyTask, read_jsonl, read_lean_file

MINIF2F_ROW = {
    "name": "mathd_algebra_478",
    "split": "test",
    "informal_prefix": "/-- The volume of a cone ... -/\n",
    "formal_statement": "theorem mathd_algebra_478 (b h v : ℝ) (h₀ : 0 < b ∧ 0 < h ∧ 0 < v) (h₁ : v = 1 / 3 "
    "* (b * h))\n    (h₂ : b = 30) (h₃ : h = 13 / 2) : v = 65 := by\n",
    "goal": "b h v : ℝ\n⊢ v = 65",
    "header": "import Mathlib\nimport Aesop\n\nset_option maxHeartbeats 400000\n\nopen BigOperators Real "
    "Nat Topology Rat\n\n",
}


def write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_minif2f_row_with_a_proof(tmp_path: Path) -> None:
    row = {**MINIF2F_ROW, "proof": "  norm_num [h₁, h₂, h₃]"}
    [task] = read_jsonl(write(tmp_path / "t.jsonl", [json.dumps(row).encode()]))
    assert isinstance(task, VerifyTask)
    assert task.id == "mathd_algebra_478"
    assert task.mode == "proof"
    assert task.header is not None and task.header.startswith("import Mathlib")


def test_full_code_and_aliases(tmp_path: Path) -> None:
    rows = [
        {"id": 7, "formal_statement": "theorem a : True := by sorry", "full_code": "theorem a : True := trivial"},
        {"problem_id": "p", "formal_statement": "theorem a : True := by sorry", "formal_proof": "trivial"},
        {"name": "whole", "code": "theorem w : True := trivial"},
    ]
    tasks = list(read_jsonl(write(tmp_path / "t.jsonl", [json.dumps(r).encode() for r in rows])))
    assert [(t.id, t.mode) for t in tasks if isinstance(t, VerifyTask)] == [
        ("7", "full_code"),
        ("p", "proof"),
        ("whole", "file"),
    ]


def test_bad_rows_are_reported_and_the_rest_is_read(tmp_path: Path) -> None:
    good = json.dumps({"id": "ok", "formal_statement": "theorem a : True :=", "proof": "trivial"}).encode()
    lines = [
        good,
        b'{"id": "cut", "formal_statement": ',
        b'{"id": "unterminated',
        b"\xff\xfe not utf8",
        b"",
        b"[1, 2]",
        b"{}",
        json.dumps({"id": "noproof", "formal_statement": "theorem a : True :="}).encode(),
        json.dumps({"id": "both", "formal_statement": "theorem a : True :=", "proof": "x", "full_code": "y"}).encode(),
        json.dumps({"id": "typed", "formal_statement": 3, "proof": "x"}).encode(),
        good,
    ]
    items = list(read_jsonl(write(tmp_path / "t.jsonl", lines)))
    assert len(items) == 11
    assert isinstance(items[0], VerifyTask) and isinstance(items[-1], VerifyTask)
    bad = [i for i in items if isinstance(i, BadRow)]
    messages = [b.message for b in bad]
    assert messages[0].startswith("invalid JSON")
    assert messages.pop(1) == "invalid JSON: Unterminated string starting at column 8"
    assert messages[1].startswith("not UTF-8: byte 0xff")
    assert messages[2] == "empty line"
    assert "expected a JSON object" in messages[3]
    assert messages[4].startswith("missing field")
    assert "no `proof` or `full_code`" in messages[5]
    assert "not both" in messages[6]
    assert "must be a string" in messages[7]
    assert bad[0].source.endswith("t.jsonl:2")
    assert bad[7].id == "both"  # (bad[1] is the unterminated string)


def test_crlf_lines_and_no_trailing_newline(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(
        b'{"id": "a", "code": "theorem a : True := trivial"}\r\n{"id": "b", "code": "theorem b : True := trivial"}'
    )
    assert [t.id for t in read_jsonl(path)] == ["a", "b"]


def test_a_byte_order_mark_starts_the_file_not_the_first_row(tmp_path: Path) -> None:
    # (as Windows tools write UTF-8); one anywhere else is a character of that row, so JSON rejects it
    path = write(
        tmp_path / "t.jsonl",
        [b'\xef\xbb\xbf{"id": "a", "code": "theorem a : True := trivial"}', b'\xef\xbb\xbf{"id": "b"}'],
    )
    first, second = read_jsonl(path)
    assert isinstance(first, VerifyTask) and first.id == "a"
    assert isinstance(second, BadRow) and "BOM" in second.message


def test_missing_jsonl_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        list(read_jsonl(tmp_path / "nope.jsonl"))


def test_lean_file(tmp_path: Path) -> None:
    (tmp_path / "a.lean").write_text("theorem a : True := trivial\n")
    task = read_lean_file(tmp_path / "a.lean")
    assert isinstance(task, VerifyTask) and task.mode == "file"
    (tmp_path / "b.lean").write_bytes(b"\xc3\x28")
    assert isinstance(read_lean_file(tmp_path / "b.lean"), BadRow)
    (tmp_path / "c.lean").write_text("  \n")
    assert isinstance(read_lean_file(tmp_path / "c.lean"), BadRow)
