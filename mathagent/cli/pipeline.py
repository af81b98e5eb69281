"""The pipeline `batch` and `eval` share: problems in, results out.

Read the problems, resume the results file, solve what is left with one
engine and one Lean pool behind a progress bar, append each result as soon
as it is final, and stop cleanly on Ctrl-C. The commands only add their own
options, messages and summaries around it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from mathagent.agent.loop import Budget
from mathagent.agent.records import Problem, ProblemError, problem_from_row
from mathagent.batch import BatchRun, Resume, open_results
from mathagent.cli import runtime
from mathagent.errors import InputError
from mathagent.jsonl import read_rows


def read_problems(path: Path, limit: int | None = None) -> list[Problem | ProblemError]:
    """The problems of a JSONL file, bad rows included (they become error results)."""
    rows = list(read_rows(path))
    if not rows:
        raise InputError(
            f"{path} has no rows: the file is empty",
            hint="give a JSONL file of problems, one per line (see examples/problems.jsonl)",
        )
    return [problem_from_row(row) for row in rows][:limit]


def warn_without_lean(rt: runtime.Runtime, err: Console, consequence: str) -> None:
    if rt.toolchain is None:
        err.print(f"[yellow]warning:[/yellow] {escape(str(rt.toolchain_problem))}; {consequence}", highlight=False)


def solve(
    rt: runtime.Runtime,
    budget: Budget,
    items: list[Problem | ProblemError],
    output: Path,
    concurrency: int,
    err: Console,
    *,
    announce: Callable[[Resume, int], str | None] = lambda resume, todo: None,
    interrupted: str,
) -> BatchRun:
    """Solve every item `output` does not hold yet; every result it holds when done.

    `announce(resume, todo)` says what the output held (None: nothing to say);
    Ctrl-C prints `interrupted` and exits 130.
    """
    resume = open_results(output)
    try:
        todo = resume.todo(items)
        message = announce(resume, todo)
        if message:
            err.print(message, highlight=False)
        if not todo:
            return BatchRun(list(resume.done.values()), skipped=len(resume.done))
        return asyncio.run(runtime.run_with_progress(rt, budget, items, resume, concurrency, err, todo))
    except KeyboardInterrupt:
        err.print(f"[yellow]interrupted[/yellow]: {interrupted}")
        raise typer.Exit(130) from None
    finally:
        resume.log.close()
