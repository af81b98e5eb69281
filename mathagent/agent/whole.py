"""The whole-proof strategy: sample whole proofs, check them, repair failures.

1. Sample `budget.samples` whole proofs of the statement; verify each one as
   soon as it arrives.
2. Each proof that fails with Lean errors gets a repair prompt (the proof,
   Lean's messages, the offending lines; never the verifier's reasons for
   cheats) and is sampled again, up to the round budget.
3. Stop at the first verified proof, or when rounds or samples run out.

It is streaming rather than round-by-round: a repair starts the moment its
failure's verdict arrives, while other checks of the same round still run,
so the model and Lean never wait for a whole round.
"""

from __future__ import annotations

import asyncio
import time
from enum import Enum, auto
from typing import Any

from mathagent import prompts
from mathagent.agent import events
from mathagent.agent.extract import proof_from_output
from mathagent.agent.feedback import repair_prompt
from mathagent.agent.records import Attempt, Result
from mathagent.agent.strategy import ProofGoal
from mathagent.engines.base import Chat, Sample, Sampling
from mathagent.verify.assemble import BadTask, Rejection, assemble
from mathagent.verify.tasks import VerifyTask
from mathagent.verify.verdict import Verdict
from mathagent.vocabulary import NO_PROOF, PromptKind, Status, VerdictKind


class WholeProof:
    """Whole proofs sampled, checked and repaired (the agent's default strategy)."""

    async def prove(self, goal: ProofGoal, result: Result, emit: events.Listener) -> None:
        await _Search(goal, result, emit).run()


class _Work(Enum):
    """What a task in a proof search is doing."""

    GENERATION = auto()
    CHECK = auto()


class _Search:
    """One statement's search: generations and checks in flight, as tasks.

    Each generated proof is checked as soon as it arrives; each check that
    fails with Lean errors starts a repair generation at once (one round deeper).
    """

    def __init__(self, goal: ProofGoal, result: Result, emit: events.Listener) -> None:
        self.goal, self.result, self.emit = goal, result, emit
        self.budget = goal.budget
        self.pending: dict[asyncio.Task[Any], tuple[_Work, Any]] = {}
        self.seen: dict[str, int] = {}  # normalized proof -> attempt index
        self.repairs: dict[int, int] = {}  # round -> repairs started
        self._verdicts: dict[int, Verdict] = {}  # attempt index -> its verdict (for deferred repairs)

    async def run(self) -> None:
        goal = self.goal
        prove_chat = prompts.render(PromptKind.PROVE, header=goal.header.rstrip("\n"), statement=goal.statement)
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
        goal = self.goal
        task = VerifyTask(
            id=f"{goal.problem.id}#{attempt.index}",
            formal_statement=goal.statement,
            proof=attempt.proof,
            header=goal.header,
        )
        self.pending[asyncio.ensure_future(goal.checker.verify(task))] = (_Work.CHECK, attempt)

    def _on_generated(
        self, generated: tuple[list[Sample], float], round_: int, kind: PromptKind, parent: int | None
    ) -> None:
        samples, seconds = generated
        result = self.result
        result.model_s += seconds
        result.rounds = max(result.rounds, round_)
        for sample in samples:
            attempt = self._record(sample, round_, kind, parent, seconds / max(1, len(samples)))
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
        chat = self._repair_chat(attempt, verdict)
        if chat is not None:
            self.repairs[next_round] = self.repairs.get(next_round, 0) + 1
            errors = sum(1 for d in verdict.diagnostics if d.severity == "error")
            self.emit(events.Repairing(attempt.index, next_round, errors))
            self._generate(next_round, PromptKind.REPAIR, chat, 1, attempt.index)
        return False

    async def _timed_generate(self, chat: Chat, sampling: Sampling) -> tuple[list[Sample], float]:
        t0 = time.monotonic()
        [samples] = await self.goal.engine.generate([chat], sampling)
        return samples, time.monotonic() - t0

    def _record(self, sample: Sample, round_: int, kind: PromptKind, parent: int | None, seconds: float) -> Attempt:
        result = self.result
        attempt = Attempt(
            index=len(result.attempts),
            round=round_,
            prompt_kind=kind,
            text=sample.text,
            proof=proof_from_output(sample.text, self.goal.statement),
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

    def _repair_chat(self, attempt: Attempt, verdict: Verdict) -> Chat | None:
        if attempt.proof is None:
            return None
        task = VerifyTask(id="-", formal_statement=self.goal.statement, proof=attempt.proof)
        try:
            submitted = assemble(task, self.goal.header).submitted
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
