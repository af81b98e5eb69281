"""The verifier's answer: a verdict, machine-readable reasons and Lean's messages."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from mathagent.jsonl import dumps

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
BAD_HEADER = "bad_header"
BAD_INPUT = "bad_input"
HEADER_AXIOM = "header_axiom"  # an allowed axiom's name declared by the task's header
FAKE_AXIOM = "fake_axiom"  # an allowed axiom's name declared by the submission, or not the canonical one
TOO_LARGE = "too_large"
TIMEOUT = "timeout"
MEMORY = "memory"
CRASH = "crash"


@dataclass(frozen=True)
class Diagnostic:
    """One Lean message, positioned in the text the user submitted (1-based lines)."""

    severity: Severity
    line: int
    column: int
    end_line: int | None = None
    end_column: int | None = None
    message: str = ""

    def short(self) -> str:
        first = self.message.strip().splitlines()[0] if self.message.strip() else ""
        return f"{self.line}:{self.column} {first}"


@dataclass(frozen=True)
class Verdict:
    """What the verifier concluded about one submission.

    `verdict == "verified"` only when every check passed; `reasons` is empty
    exactly then.
    """

    id: str
    verdict: VerdictKind
    reasons: list[str] = field(default_factory=list)
    message: str = ""
    diagnostics: list[Diagnostic] = field(default_factory=list)
    axioms: list[str] = field(default_factory=list)
    time_s: float = 0.0
    sandbox: str = ""
    cached: bool = False

    @property
    def verified(self) -> bool:
        return self.verdict == "verified"

    def first_error(self) -> Diagnostic | None:
        return next((d for d in self.diagnostics if d.severity == "error"), None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Verdict:
        fields = dict(data)
        fields["diagnostics"] = [Diagnostic(**d) for d in fields.get("diagnostics", [])]
        return cls(**fields)
