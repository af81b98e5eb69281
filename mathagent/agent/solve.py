"""Natural-language solving: sample solutions, vote on the answer, ask sympy.

Answers are read and compared with `answers` (math-verify). The result says
plainly how far the answer can be trusted: "answer checked" only when sympy
computed the same value on its own, "answer disagrees" when it computed
another, "not checked" otherwise.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from mathagent import prompts
from mathagent.agent import answers, mathcheck
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


def _judge_samples(
    problem: str, outputs: list[Sample]
) -> tuple[list[SolutionSample], list[tuple[str, int]], SolutionSample | None, tuple[AnswerCheck, str]]:
    """Each sample's answer, the vote, the best sample of the winning answer, sympy's check."""
    records = [_record(s, answers.extract(s.text)) for s in outputs]
    given = [r.answer for r in records]
    homes = answers.groups(given)
    votes = vote_from_groups(given, homes)
    top = top_group(homes)
    pool = [r for r, h in zip(records, homes, strict=True) if top is not None and h == top] or records
    best = max(pool, key=lambda r: r.mean_logprob if r.mean_logprob is not None else float("-inf")) if pool else None
    return records, votes, best, check_answer(problem, votes[0][0] if votes else None)


def top_group(homes: list[int | None]) -> int | None:
    """The group with the most votes (ties: the one seen first)."""
    counts = _counts(homes)
    return max(counts, key=lambda h: (counts[h], -h)) if counts else None


def _record(sample: Sample, answer: str | None) -> SolutionSample:
    return SolutionSample(
        text=sample.text.strip(),
        answer=answer,
        finish_reason=sample.finish_reason,
        completion_tokens=sample.completion_tokens,
        mean_logprob=sample.mean_logprob,
    )


def vote(answer_list: list[str | None]) -> list[tuple[str, int]]:
    """Group equivalent answers and count them, most votes first."""
    return vote_from_groups(answer_list, answers.groups(answer_list))


def vote_from_groups(answer_list: list[str | None], homes: list[int | None]) -> list[tuple[str, int]]:
    """(representative answer, votes) per group, most votes first (ties: first seen)."""
    counts = _counts(homes)
    return [(answer_list[h] or "", counts[h]) for h in sorted(counts, key=lambda h: (-counts[h], h))]


def _counts(homes: list[int | None]) -> dict[int, int]:
    """Votes per group (missing answers vote for none)."""
    return Counter(home for home in homes if home is not None)


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
