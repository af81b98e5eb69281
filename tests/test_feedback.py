"""Repair prompts carry Lean's errors with their lines, and never cheat verdicts."""

from __future__ import annotations

from conftest import PRELUDE_HEADER
from mathagent.agent.feedback import format_errors, repair_prompt
from mathagent.verify.tasks import VerifyTask
from mathagent.verify.toolchain import LeanToolchain
from mathagent.verify.verdict import Diagnostic, Verdict
from mathagent.verify.verifier import VerifyOptions, verify_tasks


def test_errors_with_line_and_offending_text() -> None:
    code = "theorem t : 1 = 2 := by\n  norm_num\n  simp"
    text = format_errors(
        code,
        [
            Diagnostic("error", 2, 2, message="linarith failed\nextra detail"),
            Diagnostic("warning", 3, 2, message="unused"),
        ],
    )
    assert text == "- line 2, column 2: linarith failed\n    extra detail\n  offending line: norm_num"


def test_errors_on_one_long_line_stay_small() -> None:
    """A model's garbage proof on one 5000-character line with an error every few
    characters: the line is quoted once, around the first error, and briefly."""
    line = "".join(f"tok{i} " for i in range(1000))
    code = "theorem t : 1 = 2 := by\n" + line
    errors = [Diagnostic("error", 2, col, message="unexpected token " * 100) for col in range(0, 5000, 700)]
    text = format_errors(code, errors)
    assert text.count("offending line:") == 1
    assert "tok0 " in text and "- ... and 2 more errors" in text
    assert len(text) < 6 * 700 + 300
    middle = format_errors(code, [Diagnostic("error", 2, 2500, message="here")])
    assert line[2500:2510] in middle and middle.count("...") == 2


def test_repair_prompt_from_a_real_lean_rejection(lean: LeanToolchain, options: VerifyOptions) -> None:
    statement = "theorem wrong : Eq (N.add two two) ten :="
    proof = "\n  Eq.refl _"
    [verdict] = verify_tasks(lean, options, [VerifyTask(id="w", formal_statement=statement, proof=proof)])
    submitted = PRELUDE_HEADER + statement + proof
    chat = repair_prompt(submitted, verdict)
    assert chat is not None
    content = chat[0].content
    assert "Type mismatch" in content or "type mismatch" in content
    assert "offending line: Eq.refl _" in content
    assert submitted in content


def test_cheats_and_timeouts_get_no_repair_prompt() -> None:
    banned = Verdict(id="x", verdict="rejected", reasons=["banned:axiom"], message="banned commands: `axiom` at line 3")
    timeout = Verdict(id="x", verdict="timeout", reasons=["timeout"])
    assert repair_prompt("axiom cheat : False", banned) is None
    assert repair_prompt("theorem t : True := by decide", timeout) is None
