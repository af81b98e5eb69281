"""The agent's nouns: a problem, each attempt at it, and the final result.

A result is one JSON object per line in batch output; it records every
attempt (prompt kind, text, verdict, reasons, diagnostics, timings, tokens),
so a run can be audited and evaluated later.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from mathagent.jsonl import Row, first_field
from mathagent.verify.leantext import join_proof, parse_statement
from mathagent.verify.verdict import Diagnostic
from mathagent.vocabulary import AnswerCheck, ErrorKind, PromptKind, StatementSource, Status, VerdictKind

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

    @property
    def digest(self) -> str:
        """What the problem asks, as a digest: a result is for this problem only while it matches."""
        blob = json.dumps([self.informal, self.formal_statement, self.header, self.answer], ensure_ascii=False)
        return hashlib.blake2b(blob.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


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
    prompt_kind: PromptKind
    text: str  # the model's raw output
    proof: str | None  # the proof submitted (None: nothing extractable)
    parent: int | None = None  # the attempt a repair was based on
    duplicate_of: int | None = None  # same proof as an earlier attempt: verified once
    verdict: VerdictKind | None = None
    reasons: list[str] = field(default_factory=list)
    message: str = ""
    diagnostics: list[Diagnostic] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    mean_logprob: float | None = None
    generate_s: float = 0.0
    verify_s: float = 0.0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Attempt:
        values = _known(cls, data)
        values["prompt_kind"] = PromptKind(values.get("prompt_kind", PromptKind.PROVE))
        values["verdict"] = _enum(VerdictKind, values.get("verdict"))
        values["diagnostics"] = [Diagnostic(**d) for d in values.get("diagnostics", [])]
        values.setdefault("text", "")
        values.setdefault("proof", None)
        return cls(**values)


@dataclass
class Result:
    """Everything the agent did for one problem."""

    id: str
    status: Status
    informal: str | None = None
    solution: str | None = None  # the natural-language solution
    answer: str | None = None
    answer_check: AnswerCheck | None = None
    answer_check_detail: str = ""
    reference_answer: str | None = None
    reference_parsed: str | None = None  # the dataset's answer as the checker read it
    reference_match: bool | None = None  # the answer equals the dataset's answer (None: nothing to compare)
    answer_samples: list[str | None] = field(default_factory=list)  # each sampled solution's final answer
    sample_matches: list[bool] = field(default_factory=list)  # each sample's answer vs the dataset's
    sample_texts: list[str] = field(default_factory=list)  # each sampled solution as written (to rescore)
    statement: str | None = None
    statement_source: StatementSource | None = None
    header: str | None = None
    proof: str | None = None  # the verified proof
    verified_attempt: int | None = None
    rounds: int = 0
    attempts: list[Attempt] = field(default_factory=list)
    # the tactic search's numbers, when one ran (`--strategy tactic|both`): stop, expansions, tactics_run, ...
    search: dict[str, Any] | None = None
    model: str = ""
    model_s: float = 0.0  # time spent generating (summed over requests)
    lean_s: float = 0.0  # time Lean spent checking (summed over checks)
    wall_s: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None  # what failed, on `error` results only
    error_kind: ErrorKind | None = None  # a model error is retried when a batch resumes
    source: str = ""
    note: str | None = None  # why a result that is not an error went no further (no Lean here, the time limit, ...)
    problem_digest: str | None = None  # `Problem.digest` of what was solved (None in files from before it)

    @property
    def verified(self) -> bool:
        return self.status is Status.VERIFIED

    @property
    def formal(self) -> bool:
        """Was this a problem to prove (a statement, attempts, or a formal row that failed)?"""
        return bool(self.statement or self.attempts or (self.status is Status.ERROR and not self.informal))

    def first_round(self) -> list[Attempt]:
        return [a for a in self.attempts if a.round == 1]

    def verified_round(self) -> int | None:
        """The round of the verified attempt (None: not verified)."""
        if not self.verified:
            return None
        if self.verified_attempt is None and self.search is not None:  # found by the search, after the rounds
            return max((a.round for a in self.attempts), default=0) + 1
        index = self.verified_attempt or 0
        return self.attempts[index].round if index < len(self.attempts) else 1

    def theorem_text(self) -> str | None:
        """The statement with the verified proof (or the last attempt's), joined
        as the verifier joins them."""
        if not self.statement:
            return None
        proof = (
            self.proof if self.proof is not None else next((a.proof for a in reversed(self.attempts) if a.proof), None)
        )
        if proof is None:
            return self.statement
        try:
            return join_proof(parse_statement(self.statement), proof)
        except ValueError:
            return self.statement + proof

    def lean_file(self) -> str | None:
        """The whole Lean file: the header, then `theorem_text`."""
        body = self.theorem_text()
        if body is None or self.header is None:
            return None
        return self.header.rstrip("\n") + "\n\n" + body

    def settle(self) -> None:
        """Move an explanation out of `error` into `note` unless the status is
        `error`, as `to_dict` writes it and `from_dict` reads it back."""
        if self.status is not Status.ERROR and self.error is not None:
            self.note = self.note or self.error
            self.error = None

    def to_dict(self) -> dict[str, Any]:
        """The result's JSON line. Only an `error` result has an `error`: text
        there on any other result explains its status, and is written as its `note`."""
        return _settle(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Result:
        """A result from its JSON line (`to_dict` inverted; unknown keys are ignored)."""
        values = _settle(_known(cls, data))
        values["id"] = str(values.get("id", ""))
        values["status"] = Status(values.get("status", Status.ERROR))
        values["answer_check"] = _enum(AnswerCheck, values.get("answer_check"))
        values["statement_source"] = _enum(StatementSource, values.get("statement_source"))
        values["error_kind"] = _enum(ErrorKind, values.get("error_kind"))
        values["attempts"] = [Attempt.from_dict(a) for a in values.get("attempts") or []]
        return cls(**values)


def _settle(values: dict[str, Any]) -> dict[str, Any]:
    """Move an explanation out of `error` into `note` unless the status is `error`
    (how results were written before `note` existed, and how the loop fills them in)."""
    if values.get("status", Status.ERROR) != Status.ERROR and values.get("error") is not None:
        values["note"] = values.get("note") or values["error"]
        values["error"] = None
    return values


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def _enum(kind: Any, value: Any) -> Any:
    return None if value is None else kind(value)
