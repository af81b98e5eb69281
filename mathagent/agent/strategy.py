"""How the agent proves a statement: a strategy it is given.

The agent owns everything before a proof is tried (solving, formalising,
having Lean elaborate the statement) and after (timing, errors, the final
event). Between, it hands a `ProofGoal` to its strategy, which records its
attempts in the result and, when the verifier accepts a proof, sets the
result's status to verified with that proof. `whole.WholeProof` (sample whole
proofs, check, repair) is the default; any object with a `prove` coroutine
of this shape plugs in the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from mathagent.agent import events
from mathagent.agent.budget import Budget
from mathagent.agent.records import Problem, Result
from mathagent.engines.base import Engine
from mathagent.verify.checker import Checker


@dataclass(frozen=True)
class ProofGoal:
    """Everything a strategy is given for one statement: what to prove (Lean
    has elaborated it), under which header and budget, with which model and Lean."""

    problem: Problem
    statement: str
    header: str
    budget: Budget
    engine: Engine
    checker: Checker


class Strategy(Protocol):
    async def prove(self, goal: ProofGoal, result: Result, emit: events.Listener) -> None:
        """Try to prove `goal.statement`, recording attempts, times and tokens in
        `result`; on a verified proof, set `result.status`, `proof` and
        `verified_attempt`. An `EngineError` may propagate: the agent reports it."""
        ...
