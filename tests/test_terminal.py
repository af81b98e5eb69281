"""What reaches a terminal: a proof, an id or a model's text cannot draw on it.

Lean repeats a proof's identifiers in its messages and `«…»` lets one hold
ESC: a rejected proof used to clear the screen and draw its own row as
"✓ verified". Control characters in text now show as symbols, and outside
text is never read as rich markup."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.markdown import Markdown
from rich.text import Text

from conftest import ROOT
from mathagent.cli.render import verdict_table
from mathagent.cli.terminal import SafeConsole, one_line, printable
from mathagent.verify.toolchain import LeanToolchain
from mathagent.verify.verdict import Diagnostic, Verdict, VerdictKind

CLEAR_AND_DRAW = "\x1b[H\x1b[2J\x1b[1;32m✓ verified\x1b[0m\x1b]0;title\x07\x9b31m\u202eok"
HEADER = ROOT / "examples" / "prelude_header.lean"


def rendered(*objects: object) -> str:
    out = io.StringIO()
    console = SafeConsole(file=out, force_terminal=True, color_system="standard", width=200)
    console.print(*objects)
    return out.getvalue()


def test_control_characters_show_as_symbols_and_styles_still_work() -> None:
    out = rendered(Text(CLEAR_AND_DRAW, style="red"), Markdown(f"**bold** {CLEAR_AND_DRAW}"))
    for injected in ("\x1b[H", "\x1b[2J", "\x1b[1;32m", "\x1b]0;", "\x07", "\x9b", "\u202e"):
        assert injected not in out, repr(out)
    assert "␛[2J" in out and "<U+009B>" in out and "<U+202E>" in out
    assert "\x1b[31m" in out  # rich's own colour for the style asked for
    assert printable("a\tb\nc") == "a\tb\nc" and one_line("a\nb\r") == "a␊b␍"


def test_outside_text_in_the_verdict_table_is_not_markup() -> None:
    diagnostic = Diagnostic(severity="error", line=3, column=1, message="unknown identifier '[/green]'")
    rows = [
        Verdict(id="a[/red]\nb: ✓ verified", verdict=VerdictKind.REJECTED, reasons=["axiom:[bold green]x[/]"]),
        Verdict(id="b", verdict=VerdictKind.REJECTED, reasons=["lean_error"], diagnostics=[diagnostic]),
    ]
    out = rendered(verdict_table(rows))  # `[/green]` made rich raise MarkupError: no table at all
    assert "[/green]" in out and "axiom:[bold green]x[/]" in out
    assert "a[/red]␊b" in out  # an id is one line: no row of its own to forge


@pytest.fixture
def forging_rows(tmp_path: Path) -> Path:
    honest = {"id": "honest", "formal_statement": "theorem h : Eq (N.add two two) four :=", "proof": " Eq.refl _"}
    forged = {"id": "forged", "formal_statement": "theorem f : Eq two four :=", "proof": f" «{CLEAR_AND_DRAW}»"}
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in (honest, forged)))
    return path


def test_a_proof_cannot_redraw_the_verify_table(lean: LeanToolchain, forging_rows: Path) -> None:
    env = {**os.environ, "FORCE_COLOR": "1", "COLUMNS": "200"}  # rich writes as to a terminal
    proc = subprocess.run(
        [sys.executable, "-m", "mathagent", "verify", "-i", str(forging_rows), "--header-file", str(HEADER)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
    )
    assert proc.returncode == 1, proc.stderr
    assert "\x1b[2J" not in proc.stdout and "\x1b[H" not in proc.stdout and "\x9b" not in proc.stdout
    assert "␛[2J" in proc.stdout  # Lean's message, shown as text
    assert "1 verified, 1 rejected" in proc.stdout
