"""The verifier's answer: a verdict, machine-readable reasons and Lean's messages."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

VerdictKind = Literal["verified", "rejected", "timeout", "error"]
Severity = Literal["error", "warning", "information"]

# Reason codes. `axiom:<name>` and `banned:<command>` are built from these prefixes.
LEAN_ERROR = "lean_error"
SORRY = "sorry"
AXIOM_PREFIX = "axiom:"
BANNED_PREFIX = "banned:"
STATEMENT_CHANGED = "statement_changed"
THEOREM_MISSING = "theorem_missing"
HEADER_CHANGED = "header_changed"
CHECKS_MISSING = "checks_missing"
FORGED_OUTPUT = "forged_output"
BAD_STATEMENT = "bad_statement"
BAD_INPUT = "bad_input"
TIMEOUT = "timeout"
MEMORY = "memory"
CRASH = "crash"


class Diagnostic(BaseModel):
    """One Lean message, positioned in the text the user submitted (1-based lines)."""

    model_config = ConfigDict(frozen=True)

    severity: Severity
    line: int
    column: int
    end_line: int | None = None
    end_column: int | None = None
    message: str

    def short(self) -> str:
        first = self.message.strip().splitlines()[0] if self.message.strip() else ""
        return f"{self.line}:{self.column} {first}"


class Verdict(BaseModel):
    """What the verifier concluded about one submission.

    `verified` is only ever set when every check passed; `reasons` is empty
    exactly then.
    """

    model_config = ConfigDict(frozen=True)

    id: str
    verdict: VerdictKind
    reasons: list[str] = Field(default_factory=list)
    message: str = ""
    diagnostics: list[Diagnostic] = Field(default_factory=list)
    axioms: list[str] = Field(default_factory=list)
    time_s: float = 0.0
    sandbox: str = ""
    cached: bool = False

    @property
    def verified(self) -> bool:
        return self.verdict == "verified"

    def first_error(self) -> Diagnostic | None:
        return next((d for d in self.diagnostics if d.severity == "error"), None)
