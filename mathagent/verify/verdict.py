"""The verifier's answer: a verdict, machine-readable reasons and Lean's messages."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from mathagent.jsonl import dumps

# The reason codes live with the rest of the vocabulary; verifier code spells
# them `codes.X` through this module.
from mathagent.vocabulary import (  # noqa: F401
    AXIOM_PREFIX,
    BAD_HEADER,
    BAD_INPUT,
    BAD_STATEMENT,
    BANNED_PREFIX,
    CHECKS_MISSING,
    CRASH,
    FAKE_AXIOM,
    FORGED_OUTPUT,
    HEADER_AXIOM,
    HEADER_CHANGED,
    KERNEL_BUILTIN,
    LEAN_ERROR,
    MEMORY,
    SORRY,
    STATEMENT_CHANGED,
    THEOREM_MISSING,
    TIMEOUT,
    TOO_LARGE,
    Reason,
    VerdictKind,
    axiom_reason,
    banned_reason,
)

Severity = Literal["error", "warning", "information"]  # Lean's own message severities


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
    reasons: list[Reason] = field(default_factory=list)
    message: str = ""
    diagnostics: list[Diagnostic] = field(default_factory=list)
    axioms: list[str] = field(default_factory=list)
    time_s: float = 0.0
    sandbox: str = ""
    cached: bool = False

    @property
    def verified(self) -> bool:
        return self.verdict is VerdictKind.VERIFIED

    def first_error(self) -> Diagnostic | None:
        return next((d for d in self.diagnostics if d.severity == "error"), None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Verdict:
        fields = dict(data)
        fields["verdict"] = VerdictKind(fields["verdict"])
        fields["diagnostics"] = [Diagnostic(**d) for d in fields.get("diagnostics", [])]
        fields["reasons"] = [Reason(str(r)) for r in fields.get("reasons", [])]
        return cls(**fields)
