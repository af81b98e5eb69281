"""Batch solving: a JSONL of problems in, a JSONL of results out, resumable.

Each result is appended as one line the moment it is final (see
jsonl.AppendLog), so a crash or `kill -9` loses at most the problems in
flight; running the same command again skips every id already in the output.
A bad row becomes an error row; a model server that goes away turns the
remaining problems into error rows, quickly, instead of hanging the run.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mathagent.agent import records
from mathagent.agent.loop import Agent
from mathagent.agent.records import Problem, ProblemError, Result
from mathagent.agent.solve import CHECKED
from mathagent.jsonl import AppendLog


@dataclass
class BatchSummary:
    """What a results file says, for the table and `--json`."""

    problems: int = 0
    verified: int = 0
    answer_checked: int = 0
    answer_disagrees: int = 0
    reference_matches: int = 0
    with_reference: int = 0
    unverified: int = 0
    answered: int = 0
    bad_statement: int = 0
    errors: int = 0
    verified_first_round: int = 0  # pass@k without repair, k = first_round_samples
    first_round_samples: int = 0
    attempts_per_verified: float | None = None
    model_s: float = 0.0
    lean_s: float = 0.0
    wall_s: float = 0.0
    completion_tokens: int = 0
    skipped: int = 0  # already in the output before this run
    duplicates: int = 0  # ids seen twice in the input (the first one counts)
    error_messages: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(rows: Iterable[dict[str, Any]]) -> BatchSummary:
    summary = BatchSummary()
    attempts_to_verify: list[int] = []
    messages: Counter[str] = Counter()
    for row in rows:
        summary.problems += 1
        first_round = sum(1 for a in row.get("attempts") or [] if a.get("round") == 1)
        summary.first_round_samples = max(summary.first_round_samples, first_round)
        status = row.get("status")
        if status == records.VERIFIED:
            summary.verified += 1
            verified_at = row.get("verified_attempt")
            attempts_to_verify.append((verified_at or 0) + 1)
            attempts = row.get("attempts") or []
            if verified_at is not None and verified_at < len(attempts) and attempts[verified_at].get("round") == 1:
                summary.verified_first_round += 1
        elif status == records.UNVERIFIED:
            summary.unverified += 1
        elif status == records.ANSWERED:
            summary.answered += 1
        elif status == records.BAD_STATEMENT:
            summary.bad_statement += 1
        else:
            summary.errors += 1
            messages[str(row.get("error") or "unknown error")[:160]] += 1
        if row.get("reference_match") is not None:
            summary.with_reference += 1
            summary.reference_matches += bool(row["reference_match"])
        if row.get("answer_check") == CHECKED:
            summary.answer_checked += 1
        elif row.get("answer_check") == "answer disagrees":
            summary.answer_disagrees += 1
        summary.model_s += float(row.get("model_s") or 0)
        summary.lean_s += float(row.get("lean_s") or 0)
        summary.wall_s += float(row.get("wall_s") or 0)
        summary.completion_tokens += int(row.get("completion_tokens") or 0)
    if attempts_to_verify:
        summary.attempts_per_verified = round(sum(attempts_to_verify) / len(attempts_to_verify), 2)
    summary.model_s, summary.lean_s, summary.wall_s = (round(x, 1) for x in (summary.model_s, summary.lean_s, summary.wall_s))
    summary.error_messages = [f"{n}x {m}" for m, n in messages.most_common(5)]
    return summary


def error_result(item: ProblemError) -> Result:
    return Result(id=item.id, status=records.ERROR, error=f"{item.source}: {item.message}", error_kind="input", source=item.source)


def open_results(path: Path) -> tuple[AppendLog, dict[str, dict[str, Any]], set[str]]:
    """Open a results file to resume: (log to append to, finished rows by id,
    ids dropped to be redone because the model failed on them)."""
    log = AppendLog(path)
    done = log.open()
    redo = {i for i, row in done.items() if retryable(row)}
    log.drop(redo)
    return log, {i: row for i, row in done.items() if i not in redo}, redo


def retryable(row: dict[str, Any]) -> bool:
    """A result worth redoing on resume: the model failed, not the problem."""
    return row.get("status") == records.ERROR and row.get("error_kind") == "model"


async def run_batch(
    items: Iterable[Problem | ProblemError],
    agent: Agent,
    log: AppendLog,
    done: dict[str, dict[str, Any]],
    *,
    concurrency: int = 4,
    on_result: Callable[[Result], None] = lambda r: None,
) -> BatchSummary:
    """Solve every item not already in `done`, `concurrency` at a time,
    appending each result to `log` as soon as it is final."""
    seen: set[str] = set()
    skipped = duplicates = 0
    queue: asyncio.Queue[Problem | ProblemError | None] = asyncio.Queue(maxsize=concurrency * 2)
    written: list[dict[str, Any]] = list(done.values())

    def publish(result: Result) -> None:
        row = result.to_dict()
        log.append(row)
        written.append(row)
        on_result(result)

    async def produce() -> None:
        nonlocal skipped, duplicates
        for item in items:
            if item.id in seen:
                duplicates += 1  # the first row with an id is the one solved
                continue
            seen.add(item.id)
            if item.id in done:
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
                publish(await agent.run(item))

    workers = [asyncio.ensure_future(work()) for _ in range(max(1, concurrency))]
    producer = asyncio.ensure_future(produce())
    try:
        await asyncio.gather(producer, *workers)
    finally:
        for task in (producer, *workers):
            task.cancel()
        await asyncio.gather(producer, *workers, return_exceptions=True)
    summary = summarize(written)
    summary.skipped = skipped
    summary.duplicates = duplicates
    return summary
