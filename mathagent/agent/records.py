"""The agent's nouns: a problem, each attempt at it, and the final result.

A result is one JSON object per line in batch output; it records every
attempt (prompt kind, text, verdict, reasons, diagnostics, timings, tokens),
so a run can be audited and evaluated later.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from mathagent.jsonl import Row, first_field

# Result statuses
VERIFIED = "verified"  # a proof of the statement passed the verifier
UNVERIFIED = "unverified"  # a statement, but no verified proof within the budget
ANSWERED = "answered"  # a natural-language answer only (no statement to prove)
BAD_STATEMENT = "bad_statement"  # the statement does not elaborate
ERROR = "error"  # the row, the model or Lean failed

_ID_KEYS = ("id", "name", "problem_id", "task_id")
_INFORMAL_KEYS = ("informal_statement", "problem", "question", "natural_language_statement", "informal_prefix")


@dataclass(frozen=True)
class Problem:
    id: str
    informal: str | None = None
    formal_statement: str | None = None
    header: str | None = None  # None: the Lake project's default header
    answer: str | None = None  # a reference answer, when the dataset has one
    source: str = ""


@dataclass(frozen=True)
class ProblemError:
    """A row that is not a problem, and why."""

    id: str
    source: str
    message: str


def problem_from_row(row: Row) -> Problem | ProblemError:
    """A problem from a miniF2F / DeepSeek-Prover / Lean-Workbook / MATH-style row."""
    if row.error is not None:
        return ProblemError(row.default_id, row.source, row.error)
    value = row.value
    if not isinstance(value, dict):
        return ProblemError(row.default_id, row.source, f"expected a JSON object, got {type(value).__name__}")
    problem_id = str(first_field(value, _ID_KEYS)[1] or row.default_id)
    fields: dict[str, str | None] = {}
    for name, keys in (
        ("informal", _INFORMAL_KEYS),
        ("formal_statement", ("formal_statement",)),
        ("header", ("header",)),
        ("answer", ("answer",)),
    ):
        key, found = first_field(value, keys)
        if isinstance(found, (int, float)) and name == "answer":
            found = str(found)
        if key is not None and not isinstance(found, str):
            return ProblemError(problem_id, row.source, f"field `{key}` must be a string, got {type(found).__name__}")
        fields[name] = found.strip() if isinstance(found, str) and name == "informal" else found
    if not fields["informal"] and not fields["formal_statement"]:
        return ProblemError(
            problem_id,
            row.source,
            "missing field: a problem needs `informal_statement`/`problem` or `formal_statement`",
        )
    informal = fields["informal"] or None
    if informal is not None and informal.startswith("/--"):  # miniF2F's informal_prefix is a doc comment
        informal = informal.removeprefix("/--").removesuffix("-/").strip()
    return Problem(
        id=problem_id,
        informal=informal,
        formal_statement=fields["formal_statement"],
        header=fields["header"],
        answer=fields["answer"],
        source=row.source,
    )


@dataclass
class Attempt:
    """One model output and what became of it."""

    index: int
    round: int
    prompt_kind: str  # "prove" | "repair"
    text: str  # the model's raw output
    proof: str | None  # the proof submitted (None: nothing extractable)
    parent: int | None = None  # the attempt a repair was based on
    duplicate_of: int | None = None  # same proof as an earlier attempt: verified once
    verdict: str | None = None  # verified | rejected | timeout | error
    reasons: list[str] = field(default_factory=list)
    message: str = ""
    diagnostics: list[dict[str, Any]] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    mean_logprob: float | None = None
    generate_s: float = 0.0
    verify_s: float = 0.0


@dataclass
class Result:
    """Everything the agent did for one problem."""

    id: str
    status: str
    informal: str | None = None
    solution: str | None = None  # the natural-language solution
    answer: str | None = None
    answer_check: str | None = None  # "answer checked" | "answer disagrees" | "not checked"
    answer_check_detail: str = ""
    reference_answer: str | None = None
    reference_match: bool | None = None  # the answer equals the dataset's answer (None: nothing to compare)
    answer_samples: list[str | None] = field(default_factory=list)  # each sampled solution's answer
    sample_matches: list[bool] = field(default_factory=list)  # each sample's answer vs the dataset's
    statement: str | None = None
    statement_source: str | None = None  # "given" | "autoformalized"
    header: str | None = None
    proof: str | None = None  # the verified proof
    verified_attempt: int | None = None
    rounds: int = 0
    attempts: list[Attempt] = field(default_factory=list)
    model: str = ""
    model_s: float = 0.0  # time spent generating (summed over requests)
    lean_s: float = 0.0  # time Lean spent checking (summed over checks)
    wall_s: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None
    error_kind: str | None = None  # "input" | "model": a model error is retried when a batch resumes
    source: str = ""

    @property
    def verified(self) -> bool:
        return self.status == VERIFIED

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
