"""Natural-language solving: sample solutions, vote on the answer, ask sympy.

The result says plainly how far the answer can be trusted: "answer checked"
only when sympy computed the same value on its own, "answer disagrees" when
it computed another, "not checked" otherwise.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from mathagent import prompts
from mathagent.agent import mathcheck
from mathagent.agent.extract import final_answer
from mathagent.engines.base import Engine, Sample
from mathagent.vocabulary import AnswerCheck


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
    prompt: str = "solve",
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
    records = [_record(s) for s in outputs]
    votes = vote([r.answer for r in records])
    winner = votes[0][0] if votes else None
    best = _best(records, winner)
    check, detail = check_answer(problem, winner)
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


def _record(sample: Sample) -> SolutionSample:
    return SolutionSample(
        text=sample.text.strip(),
        answer=final_answer(sample.text),
        finish_reason=sample.finish_reason,
        completion_tokens=sample.completion_tokens,
        mean_logprob=sample.mean_logprob,
    )


def vote(answers: list[str | None]) -> list[tuple[str, int]]:
    """Group equivalent answers (sympy, else same text) and count them."""
    groups: list[tuple[str, int]] = []
    for answer in answers:
        if answer is None:
            continue
        for i, (representative, count) in enumerate(groups):
            if _same(answer, representative):
                groups[i] = (representative, count + 1)
                break
        else:
            groups.append((answer, 1))
    return sorted(groups, key=lambda g: -g[1])


def _same(a: str, b: str) -> bool:
    if " ".join(a.split()) == " ".join(b.split()):
        return True
    return bool(mathcheck.same_answer(a, b))


def _best(records: list[SolutionSample], answer: str | None) -> SolutionSample | None:
    pool = [r for r in records if answer is not None and r.answer is not None and _same(r.answer, answer)] or records
    if not pool:
        return None
    return max(pool, key=lambda r: r.mean_logprob if r.mean_logprob is not None else float("-inf"))


def check_answer(problem: str, answer: str | None) -> tuple[AnswerCheck, str]:
    """(status, detail) of sympy's independent check of `answer`."""
    computed = mathcheck.compute(problem)
    if computed is None:
        return AnswerCheck.NOT_CHECKED, "sympy cannot compute this problem on its own"
    if answer is None:
        return AnswerCheck.NOT_CHECKED, f"no final answer found; sympy computed {computed.what} = {computed.show()}"
    parsed = mathcheck.parse_answer(answer)
    if parsed is None:
        return (
            AnswerCheck.NOT_CHECKED,
            f"the answer {answer!r} could not be read; sympy computed {computed.what} = {computed.show()}",
        )
    if mathcheck.equivalent(parsed, computed.value):
        return AnswerCheck.CHECKED, f"sympy computed {computed.what} = {computed.show()}"
    return AnswerCheck.DISAGREES, f"sympy computed {computed.what} = {computed.show()}"
