"""The pipeline `batch` and `eval` share: problems in, results out.

Read the problems, resume the results file, solve what is left with one
engine and one Lean pool behind a progress bar, append each result as soon
as it is final, and stop cleanly on Ctrl-C. The commands only add their own
options, messages and summaries around it. With `--ray` the Lean checks (and
the model, where replicas are planned) run on a Ray cluster; this process
still reads the problems and is the only one that writes results.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from mathagent.agent.loop import Agent, Budget
from mathagent.agent.records import Problem, ProblemError, problem_from_row
from mathagent.batch import BatchRun, Resume, open_results
from mathagent.cli import runtime
from mathagent.cli.common import settings_from_flags
from mathagent.engines.base import Engine
from mathagent.errors import InputError, ToolchainError
from mathagent.jsonl import read_rows
from mathagent.project import find_project


def prepare(
    lean: Path | None, project: Path | None, header_file: Path | None, **flags: object
) -> tuple[runtime.Runtime, str | None]:
    """The engine and Lean the command's flags choose, and the Ray cluster to run on (None: this machine)."""
    from mathagent.cluster.session import address_of

    settings, lake_project = settings_from_flags(lean, project, **flags)
    return runtime.prepare(settings, lake_project, header_file), address_of(settings)


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
    cluster: str | None = None,
) -> BatchRun:
    """Solve every item `output` does not hold yet; every result it holds when done.

    `announce(resume, todo)` says what the output held (None: nothing to say);
    Ctrl-C prints `interrupted` and exits 130. `cluster`: the Ray cluster to
    run on (an address, `auto` or `local`); the results file is written here
    all the same, by this process only.
    """
    resume = open_results(output)
    try:
        todo = resume.todo(items)
        message = announce(resume, todo)
        if message:
            err.print(message, highlight=False)
        if not todo:
            return BatchRun(list(resume.done.values()), skipped=len(resume.done))
        if cluster is None:
            return asyncio.run(runtime.run_with_progress(rt, budget, items, resume, concurrency, err, todo))
        from mathagent.cluster.session import connect

        with connect(cluster):
            return asyncio.run(
                runtime.run_with_progress(rt, budget, items, resume, concurrency, err, todo, cluster_agent)
            )
    except KeyboardInterrupt:
        err.print(f"[yellow]interrupted[/yellow]: {interrupted}")
        raise typer.Exit(130) from None
    finally:
        resume.log.close()


@asynccontextmanager
async def cluster_agent(rt: runtime.Runtime, budget: Budget, say: Callable[[str], None]) -> AsyncIterator[Agent]:
    """An agent whose checks run on every node of the connected Ray cluster, and whose
    model runs on engine replicas there (or, when none are planned, here as usual)."""
    from mathagent.cluster.checker import RayChecker
    from mathagent.cluster.engine import RayEngine, plan_replicas
    from mathagent.cluster.nodes import alive_nodes

    nodes = alive_nodes()
    cpus, gpus = sum(n.cpus for n in nodes), sum(n.gpus for n in nodes)
    say(f"Ray cluster: {len(nodes)} node(s), {cpus} CPU(s), {gpus} GPU(s)")
    project = find_project(Path.cwd(), rt.settings.lean.project)
    checker = RayChecker(rt.settings, rt.options, project=project, say=say)
    engine: Engine | None = None
    try:
        verifier: RayChecker | None = checker
        try:
            await checker.start()
        except ToolchainError as exc:
            say(f"warning: {exc.message}; results will be unverified")
            verifier = None
        plans = plan_replicas(rt.choice, rt.settings, nodes)
        if plans:
            cluster_engine = RayEngine(plans, rt.settings.engine, say=say)
            engine = cluster_engine
            await cluster_engine.start()
        else:
            engine = await runtime.load_engine(rt, say)
        yield Agent(engine, verifier, budget, default_header=rt.options.default_header)
    finally:
        await checker.aclose()
        if engine is not None:
            await engine.aclose()
