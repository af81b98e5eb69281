"""Lean's verdict on a failed proof, turned into a repair prompt.

Only Lean's own error messages and the offending lines go back to the model.
Never the verifier's reason codes for cheats (banned commands, axioms,
forged output): a model told "axiom not allowed" learns to hide the axiom
better, not to prove the theorem.
"""

from __future__ import annotations

from mathagent import prompts
from mathagent.engines.base import Chat
from mathagent.verify.verdict import Diagnostic, Verdict
from mathagent.vocabulary import PromptKind

MAX_ERRORS = 6
MAX_MESSAGE_LINES = 8


def format_errors(code: str, diagnostics: list[Diagnostic], limit: int = MAX_ERRORS) -> str:
    """Each error as `line N, column C: message` and the offending line's text."""
    lines = code.split("\n")  # as Lean counts lines (splitlines would also split at U+2028)
    parts = []
    errors = [d for d in diagnostics if d.severity == "error"]
    for d in errors[:limit]:
        message = "\n    ".join(d.message.strip().splitlines()[:MAX_MESSAGE_LINES])
        offending = lines[d.line - 1].rstrip() if 0 < d.line <= len(lines) else ""
        part = f"- line {d.line}, column {d.column}: {message}"
        if offending.strip():
            part += f"\n  offending line: {offending.strip()}"
        parts.append(part)
    if len(errors) > limit:
        parts.append(f"- ... and {len(errors) - limit} more errors")
    return "\n".join(parts)


def repair_prompt(code: str, verdict: Verdict) -> Chat | None:
    """The repair chat for a proof Lean rejected with errors; None when the
    failure is not something to repair (cheats, timeouts, no error to show)."""
    if not any(d.severity == "error" for d in verdict.diagnostics):
        return None
    return prompts.render(PromptKind.REPAIR, code=code, errors=format_errors(code, verdict.diagnostics))
