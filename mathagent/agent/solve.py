"""Natural-language solving: sample solutions, vote on the answer, ask sympy,
and judge the answer against the problem's reference answer.

Answers are read and compared with `answers` (math-verify). The result says
plainly how far the answer can be trusted: "answer checked" only when sympy
computed the same value on its own, "answer disagrees" when it computed
another, "not checked" otherwise.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from mathagent import prompts
from mathagent.agent import answers, mathcheck
from mathagent.agent.budget import Budget
from mathagent.agent.records import Problem, Result
from mathagent.engines.base import Engine, Sample
from mathagent.vocabulary import AnswerCheck, PromptKind


@dataclass(frozen=True)
class SolutionSample:
    text: str
    answer: str | None
    finish_reason: str
    completion_tokens: int
    mean_logprob: float | None


@dataclass(frozen=True)
class SolveResult:
    problem: str
    solution: str  # the best sample of the winning answer
    answer: str | None
    votes: list[tuple[str, int]]  # (answer, count), most votes first
    check: AnswerCheck
    check_detail: str
    model: str
    samples: list[SolutionSample] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    time_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["votes"] = [{"answer": a, "count": c} for a, c in self.votes]
        return data


async def solve(
    problem: str,
    engine: Engine,
    *,
    samples: int = 1,
    overrides: dict[str, Any] | None = None,
    prompt: str = PromptKind.SOLVE,
) -> SolveResult:
    """Solve `problem` with `samples` solutions and a majority vote.

    `overrides` change the prompt's default sampling (temperature, max_tokens,
    seed, ...); a single sample is greedy unless a temperature is given.
    """
    started = time.monotonic()
    template = prompts.load(prompt)
    overrides = dict(overrides or {})
    if samples == 1:
        overrides.setdefault("temperature", 0.0)  # one answer: take the most likely
    params = replace(template.default_sampling(**overrides), n=samples)
    [outputs] = await engine.generate([template.render(problem=problem)], params)
    # answer reading runs in checker processes: off the event loop
    records, votes, best, (check, detail) = await asyncio.to_thread(_judge_samples, problem, outputs)
    winner = votes[0][0] if votes else None
    return SolveResult(
        problem=problem,
        solution=best.text if best else "",
        answer=winner,
        votes=votes,
        check=check,
        check_detail=detail,
        model=engine.info.model,
        samples=records,
        prompt_tokens=outputs[0].prompt_tokens if outputs else 0,
        completion_tokens=sum(s.completion_tokens for s in outputs),
        time_s=round(time.monotonic() - started, 3),
    )


async def solve_and_score(problem: Problem, engine: Engine, budget: Budget, result: Result) -> SolveResult:
    """Solve `problem.informal` as `budget` says and record the solution, the
    answer, sympy's check and every sample in `result`; with a reference
    answer, judge the winning answer (its best sample) and every sample against it."""
    t0 = time.monotonic()
    nl = await solve(
        problem.informal or "", engine, samples=budget.solve_samples, overrides={"max_tokens": budget.max_tokens}
    )
    result.model_s += time.monotonic() - t0
    result.solution, result.answer = nl.solution, nl.answer
    result.answer_check, result.answer_check_detail = nl.check, nl.check_detail
    result.answer_samples = [s.answer for s in nl.samples]
    result.sample_texts = [s.text for s in nl.samples]
    if problem.answer is not None:
        scored = await asyncio.to_thread(answers.score, problem.answer, nl.solution, result.sample_texts)
        result.reference_match, result.reference_parsed = scored.match, scored.gold
        result.sample_matches = scored.sample_matches
    result.prompt_tokens += nl.prompt_tokens
    result.completion_tokens += nl.completion_tokens
    return nl


def _judge_samples(
    problem: str, outputs: list[Sample]
) -> tuple[list[SolutionSample], list[tuple[str, int]], SolutionSample | None, tuple[AnswerCheck, str]]:
    """Each sample's answer, the vote, the best sample of the winning answer, sympy's check."""
    vote = answers.tally([s.text for s in outputs], [s.mean_logprob for s in outputs])
    records = [_record(s, answer) for s, answer in zip(outputs, vote.answers, strict=True)]
    best = records[vote.winner] if vote.winner is not None else None
    return records, vote.votes, best, check_answer(problem, vote.answer)


def _record(sample: Sample, answer: str | None) -> SolutionSample:
    return SolutionSample(
        text=sample.text.strip(),
        answer=answer,
        finish_reason=sample.finish_reason,
        completion_tokens=sample.completion_tokens,
        mean_logprob=sample.mean_logprob,
    )


def check_answer(problem: str, answer: str | None) -> tuple[AnswerCheck, str]:
    """(status, detail) of sympy's independent check of `answer`, compared
    through the same equivalence as every other answer."""
    computed = mathcheck.compute(problem)
    if computed is None:
        return AnswerCheck.NOT_CHECKED, "sympy cannot compute this problem on its own"
    if answer is None:
        return AnswerCheck.NOT_CHECKED, f"no final answer found; sympy computed {computed.what} = {computed.show()}"
    agrees = answers.same(computed.latex(), answer)
    if agrees is None:
        return (
            AnswerCheck.NOT_CHECKED,
            f"the answer {answer!r} could not be compared; sympy computed {computed.what} = {computed.show()}",
        )
    status = AnswerCheck.CHECKED if agrees else AnswerCheck.DISAGREES
    return status, f"sympy computed {computed.what} = {computed.show()}"
