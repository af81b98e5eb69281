"""Batch solving: a JSONL of problems in, a JSONL of results out, resumable.

Each result is appended as one line the moment it is final (see
jsonl.AppendLog), so a crash or `kill -9` loses at most the problems in
flight; running the same command again skips every id already in the output.
A bad row becomes an error row; a model server that goes away turns the
remaining problems into error rows, quickly, instead of hanging the run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mathagent.agent import events
from mathagent.agent.loop import Agent
from mathagent.agent.records import Problem, ProblemError, Result
from mathagent.eval.metrics import Metrics, summarize
from mathagent.jsonl import AppendLog
from mathagent.vocabulary import ErrorKind, Status


@dataclass
class BatchSummary:
    """The batch command's view of a run's numbers (its table and `--json`)."""

    problems: int = 0
    verified: int = 0
    answer_checked: int = 0
    answer_disagrees: int = 0
    reference_matches: int = 0
    with_reference: int = 0
    unverified: int = 0
    answered: int = 0
    bad_statement: int = 0
    errors: int = 0  # results with an `error` (status `error`)
    formal: int = 0  # problems with a statement to prove
    verified_first_round: int = 0  # pass@k without repair, k = first_round_samples
    first_round_samples: int = 0
    attempts_per_verified: float | None = None
    model_s: float = 0.0  # summed over every result (they overlap)
    lean_s: float = 0.0
    problem_s: float = 0.0  # each result's own wall time, summed (they overlap)
    wall_s: float = 0.0  # the real wall time of this run, which solved `ran` of the problems
    ran: int = 0  # problems solved by this run (the others were in the output already)
    completion_tokens: int = 0
    skipped: int = 0  # already in the output before this run
    duplicates: int = 0  # ids seen twice in the input (the first one counts)
    error_messages: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # why results that are not errors went no further

    @classmethod
    def of(
        cls, m: Metrics, *, wall_s: float = 0.0, ran: int = 0, skipped: int = 0, duplicates: int = 0
    ) -> BatchSummary:
        return cls(
            problems=m.problems,
            verified=m.verified,
            answer_checked=m.answer_checked,
            answer_disagrees=m.answer_disagrees,
            reference_matches=m.reference_matches,
            with_reference=m.with_reference,
            unverified=m.unverified,
            answered=m.answered,
            bad_statement=m.bad_statement,
            errors=m.errors,
            formal=m.formal,
            verified_first_round=m.verified_first_round,
            first_round_samples=m.formal_samples,
            attempts_per_verified=m.attempts_per_solved,
            model_s=round(m.model_s, 1),
            lean_s=round(m.lean_s, 1),
            problem_s=round(m.wall_s, 1),
            wall_s=round(wall_s, 1),
            ran=ran,
            completion_tokens=m.completion_tokens,
            skipped=skipped,
            duplicates=duplicates,
            error_messages=list(m.error_messages),
            notes=list(m.notes),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BatchRun:
    """Every result a run's output holds (earlier runs' included), and what the input repeated."""

    results: list[Result]
    skipped: int = 0  # finished by an earlier run
    duplicates: int = 0  # ids seen twice in the input
    ran: int = 0  # results this run added

    def summary(self, wall_s: float = 0.0) -> BatchSummary:
        """The numbers of every result; `wall_s`: how long this run took (it solved `ran` of them)."""
        return BatchSummary.of(
            summarize(self.results), wall_s=wall_s, ran=self.ran, skipped=self.skipped, duplicates=self.duplicates
        )


@dataclass
class Resume:
    """A results file opened to go on with: the log to append to, the results
    already final, and the ids dropped to be redone (the model failed on them)."""

    log: AppendLog
    done: dict[str, Result]
    redo: set[str]

    def todo(self, items: Iterable[Problem | ProblemError]) -> int:
        return len({i.id for i in items} - set(self.done))


def error_result(item: ProblemError) -> Result:
    return Result(
        id=item.id,
        status=Status.ERROR,
        error=f"{item.source}: {item.message}",
        error_kind=ErrorKind.INPUT,
        source=item.source,
    )


def open_results(path: Path) -> Resume:
    """Open a results file to resume it. Rows that are not results (damaged by
    hand, or from another program) are redone, like the model's failures."""
    log = AppendLog(path)
    rows = log.open()
    done: dict[str, Result] = {}
    redo: set[str] = set()
    for key, row in rows.items():
        try:
            result = Result.from_dict(row)
        except (TypeError, ValueError):
            redo.add(key)
            continue
        if retryable(result):
            redo.add(key)
        else:
            done[key] = result
    log.drop(redo)
    return Resume(log, done, redo)


def retryable(result: Result) -> bool:
    """A result worth redoing on resume: the model failed, not the problem."""
    return result.status is Status.ERROR and result.error_kind is ErrorKind.MODEL


async def run_batch(
    items: Iterable[Problem | ProblemError],
    agent: Agent,
    resume: Resume,
    *,
    concurrency: int = 4,
    on_result: Callable[[Result], None] = lambda r: None,
    on_event: events.Listener = events.ignore,
) -> BatchRun:
    """Solve every item not already in `resume.done`, `concurrency` at a time,
    appending each result to its log as soon as it is final."""
    seen: set[str] = set()
    skipped = duplicates = 0
    queue: asyncio.Queue[Problem | ProblemError | None] = asyncio.Queue(maxsize=concurrency * 2)
    written: list[Result] = list(resume.done.values())

    def publish(result: Result) -> None:
        row = result.to_dict()
        resume.log.append(row)
        written.append(Result.from_dict(row))  # the summary counts what the file holds
        on_result(result)

    async def produce() -> None:
        nonlocal skipped, duplicates
        for item in items:
            if item.id in seen:
                duplicates += 1  # the first row with an id is the one solved
                continue
            seen.add(item.id)
            if item.id in resume.done:
                skipped += 1  # finished by an earlier run: resume past it
                continue
            await queue.put(item)
        for _ in range(concurrency):
            await queue.put(None)

    async def work() -> None:
        while True:
            item = await queue.get()
            if item is None:
                return
            if isinstance(item, ProblemError):
                publish(error_result(item))
            else:
                publish(await agent.run(item, on_event))

    workers = [asyncio.ensure_future(work()) for _ in range(max(1, concurrency))]
    producer = asyncio.ensure_future(produce())
    try:
        await asyncio.gather(producer, *workers)
    finally:
        for task in (producer, *workers):
            task.cancel()
        await asyncio.gather(producer, *workers, return_exceptions=True)
    return BatchRun(written, skipped=skipped, duplicates=duplicates, ran=len(written) - len(resume.done))
