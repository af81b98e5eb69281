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
# A model's failed proof can be one line of hundreds of tokens, with an error every few
# characters: quoted whole for each error, it overflowed the model's context window.
MAX_LINE_CHARS = 160
MAX_MESSAGE_CHARS = 600


def format_errors(code: str, diagnostics: list[Diagnostic], limit: int = MAX_ERRORS) -> str:
    """Each error as `line N, column C: message` and the offending line's text (once per
    line, and around the column when the line is long), in bounded size."""
    lines = code.split("\n")  # as Lean counts lines (splitlines would also split at U+2028)
    parts = []
    quoted: set[int] = set()
    errors = [d for d in diagnostics if d.severity == "error"]
    for d in errors[:limit]:
        message = "\n    ".join(d.message.strip().splitlines()[:MAX_MESSAGE_LINES])
        part = f"- line {d.line}, column {d.column}: {_clip(message, MAX_MESSAGE_CHARS)}"
        offending = lines[d.line - 1].rstrip() if 0 < d.line <= len(lines) else ""
        if offending.strip() and d.line not in quoted:
            quoted.add(d.line)
            part += f"\n  offending line: {_around(offending, d.column)}"
        parts.append(part)
    if len(errors) > limit:
        parts.append(f"- ... and {len(errors) - limit} more errors")
    return "\n".join(parts)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + " ..."


def _around(line: str, column: int) -> str:
    """The line without its indentation, or the part of a long one around `column`."""
    if len(line) <= MAX_LINE_CHARS:
        return line.strip()
    start = max(0, min(column - MAX_LINE_CHARS // 2, len(line) - MAX_LINE_CHARS))
    return ("... " if start else "") + line[start : start + MAX_LINE_CHARS].strip() + " ..."


def repair_prompt(code: str, verdict: Verdict) -> Chat | None:
    """The repair chat for a proof Lean rejected with errors; None when the
    failure is not something to repair (cheats, timeouts, no error to show)."""
    if not any(d.severity == "error" for d in verdict.diagnostics):
        return None
    return prompts.render(PromptKind.REPAIR, code=code, errors=format_errors(code, verdict.diagnostics))
