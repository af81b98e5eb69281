"""What the agent takes from a model's output: the proof to submit, the
statement an autoformalization wrote (final answers: see `answers`).

The Lean text is read by `verify.leantext`, on Lean's own tokens."""

from __future__ import annotations

from mathagent.verify.leantext import first_statement, last_lean_block, proof_after_statement


def proof_from_output(text: str, statement: str) -> str | None:
    """The proof to submit from a model's output: its last Lean block (or the
    text itself when it wrote no fence), minus a repeated header and statement."""
    code = last_lean_block(text)
    if code is None:
        code = text if text.strip() else None  # keep indentation: it may be a tactic block
    if code is None:
        return None
    try:
        proof = proof_after_statement(code, statement)
    except ValueError:
        return None
    return proof if proof.strip() else None


def statement_from_output(text: str) -> str | None:
    """A theorem statement, up to its `:=`, from an autoformalization output."""
    return first_statement(last_lean_block(text) or text)
