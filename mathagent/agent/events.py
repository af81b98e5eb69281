"""What the loop tells whoever watches it (chat, progress, tests), as it happens.

One small frozen dataclass per event; a listener is any callable taking an
`Event`, and matches on the type. A field renamed here breaks its readers
at type-check time instead of silently.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mathagent.vocabulary import AnswerCheck, PromptKind, SearchStop, StatementSource, Status, VerdictKind


@dataclass(frozen=True)
class Solving:
    """Writing a natural-language solution."""


@dataclass(frozen=True)
class Solved:
    solution: str | None
    answer: str | None
    check: AnswerCheck
    detail: str


@dataclass(frozen=True)
class Formalizing:
    """Stating the problem in Lean."""


@dataclass(frozen=True)
class StatementReady:
    statement: str
    source: StatementSource | None


@dataclass(frozen=True)
class NoLean:
    message: str | None


@dataclass(frozen=True)
class _Message:
    """An event whose whole content is one message for people."""

    message: str


@dataclass(frozen=True)
class BadStatement(_Message):
    """The statement does not elaborate, so no proof can be checked; `message` is Lean's reason."""


@dataclass(frozen=True)
class Generating:
    round: int
    kind: PromptKind
    n: int


@dataclass(frozen=True)
class Verifying:
    round: int
    pending: int  # checks in flight


@dataclass(frozen=True)
class VerdictReceived:
    attempt: int
    round: int
    verdict: VerdictKind
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Repairing:
    attempt: int
    round: int
    errors: int  # Lean errors the repair prompt shows


@dataclass(frozen=True)
class Searching:
    """The tactic search starts (after `replayed` tactics of a failed whole proof)."""

    expansions: int  # its budget
    candidates: int  # tactics asked for per state
    replayed: int


@dataclass(frozen=True)
class TacticTried:
    node: int  # its index in the search's trace
    tactic: str
    accepted: bool  # Lean ran it (False: `error` says why)
    error: str
    verdict: str | None  # for a tactic that left no goals: the verifier's verdict on the whole proof


@dataclass(frozen=True)
class SearchDone:
    stop: SearchStop
    expansions: int
    tactics_run: int
    verified: bool


@dataclass(frozen=True)
class TimeLimit:
    """The problem's time limit ran out."""


@dataclass(frozen=True)
class Failed(_Message):
    """The model engine failed; `message` says how."""


@dataclass(frozen=True)
class Done:
    status: Status


Event = (
    Solving
    | Solved
    | Formalizing
    | StatementReady
    | NoLean
    | BadStatement
    | Generating
    | Verifying
    | VerdictReceived
    | Repairing
    | Searching
    | TacticTried
    | SearchDone
    | TimeLimit
    | Failed
    | Done
)
Listener = Callable[[Event], None]


def ignore(event: Event) -> None:
    """The listener for nobody."""
