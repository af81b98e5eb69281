"""Problems in, results out: what `batch`, `eval` and `chat` run on.

A problem's way through: `read_problems` turns a JSONL file into problems
(bad rows become `ProblemError`s); `solve` opens the results file
(`open_results`: resume past every result already final, redo the model's
failures), loads one engine and opens one Lean pool (`open_agent`, or
`cluster_agent` on a Ray cluster), and `run_problems` hands each problem to
the agent, `concurrency` at a time. Each result is appended to the file once,
the moment it is final, and kept as an object: `Run.results` is what the
summary (`eval.metrics.summarize`) counts.

The callers pass listeners in (what to say, a progress display); nothing here
imports the command line. With a Ray cluster the Lean checks (and the model,
where replicas are planned) run on its nodes; this process still reads the
problems and is the only one that writes results.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager, AbstractContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from mathagent import interrupts
from mathagent.agent import events
from mathagent.agent.budget import Budget
from mathagent.agent.loop import Agent
from mathagent.agent.records import Problem, ProblemError, Result, problem_from_row
from mathagent.config import Settings
from mathagent.engines import select
from mathagent.engines.base import Engine
from mathagent.engines.openai import OpenAIEngine
from mathagent.errors import InputError, ToolchainError
from mathagent.jsonl import AppendLog, read_rows
from mathagent.project import find_project
from mathagent.verify.fingerprint import modules_digest
from mathagent.verify.toolchain import LeanToolchain, find_lean
from mathagent.verify.verifier import Verifier, VerifyOptions
from mathagent.vocabulary import ErrorKind, Status

Say = Callable[[str], None]


# ---------------------------------------------------------------- engine and Lean


@dataclass(frozen=True)
class Runtime:
    """The engine and the Lean a run will use, decided but not loaded."""

    settings: Settings
    choice: select.EngineChoice
    toolchain: LeanToolchain | None
    toolchain_problem: str | None  # why there is no Lean, for people
    options: VerifyOptions

    @classmethod
    def prepare(cls, settings: Settings, project: Path | None, options: VerifyOptions) -> Runtime:
        """Decide engine and Lean without loading anything heavy."""
        try:
            toolchain, problem = find_lean(settings, project), None
        except ToolchainError as exc:
            toolchain, problem = None, exc.message.splitlines()[0]
        return cls(settings, select.choose(settings.engine), toolchain, problem, options)


AgentOpener = Callable[[Runtime, Budget, Say], AbstractAsyncContextManager[Agent]]


@asynccontextmanager
async def open_agent(runtime: Runtime, budget: Budget, say: Say, *, interactive: bool = False) -> AsyncIterator[Agent]:
    """Load the model and open the Lean pool in this process; close both afterwards."""
    engine = await load_engine(runtime, say, interactive=interactive)
    verifier = Verifier(runtime.toolchain, runtime.options) if runtime.toolchain is not None else None
    try:
        yield Agent(engine, verifier, budget, default_header=runtime.options.default_header)
    finally:
        if verifier is not None:
            await verifier.aclose()
        await engine.aclose()


async def load_engine(runtime: Runtime, say: Say, *, interactive: bool = False) -> Engine:
    """The engine in this process, started (off the event loop: loading takes seconds)."""
    engine = await asyncio.to_thread(
        lambda: select.build(
            runtime.choice, runtime.settings.engine, runtime.settings.cache_dir, say, interactive=interactive
        )
    )
    if isinstance(engine, OpenAIEngine):
        await engine.model()  # reach the server now: a wrong URL fails here, named, not mid-run
    return engine


@asynccontextmanager
async def cluster_agent(runtime: Runtime, budget: Budget, say: Say) -> AsyncIterator[Agent]:
    """An agent whose checks run on every node of the connected Ray cluster, and whose
    model runs on engine replicas there (or, when none are planned, here as usual)."""
    from mathagent.cluster.checker import RayChecker
    from mathagent.cluster.engine import RayEngine, plan_replicas
    from mathagent.cluster.nodes import alive_nodes

    nodes = alive_nodes()
    cpus, gpus = sum(n.cpus for n in nodes), sum(n.gpus for n in nodes)
    say(f"Ray cluster: {len(nodes)} node(s), {cpus} CPU(s), {gpus} GPU(s)")
    project = find_project(Path.cwd(), runtime.settings.lean.project)
    checker = RayChecker(runtime.settings, runtime.options, project=project, say=say)
    engine: Engine | None = None
    try:
        verifier: RayChecker | None = checker
        try:
            await checker.start()
        except ToolchainError as exc:
            say(f"warning: {exc.message}; results will be unverified")
            verifier = None
        plans = plan_replicas(runtime.choice, runtime.settings, nodes)
        if plans:
            cluster_engine = RayEngine(plans, runtime.settings.engine, say=say)
            engine = cluster_engine
            await cluster_engine.start()
        else:
            engine = await load_engine(runtime, say)
        yield Agent(engine, verifier, budget, default_header=runtime.options.default_header)
    finally:
        await checker.aclose()
        if engine is not None:
            await engine.aclose()


# ---------------------------------------------------------------- problems in


def read_problems(path: Path, limit: int | None = None) -> list[Problem | ProblemError]:
    """The problems of a JSONL file, bad rows included (they become error results)."""
    rows = list(read_rows(path))
    if not rows:
        raise InputError(
            f"{path} has no rows: the file is empty",
            hint="give a JSONL file of problems, one per line (see examples/problems.jsonl)",
        )
    return [problem_from_row(row) for row in rows][:limit]


def error_result(item: ProblemError) -> Result:
    """The result of a row that is not a problem."""
    return Result(
        id=item.id,
        status=Status.ERROR,
        error=f"{item.source}: {item.message}",
        error_kind=ErrorKind.INPUT,
        source=item.source,
    )


# ---------------------------------------------------------------- results out


def checking_context(runtime: Runtime) -> str:
    """What a verdict depends on besides the problem: the Lean, the modules it can
    import, the default header (a `--header-file`, the project's) and the axiom
    policy. A result checked in another context is solved again on resume."""
    options, lean = runtime.options, runtime.toolchain
    parts = [
        lean.version_line if lean else None,
        str(lean.lean) if lean else None,
        modules_digest(lean.lean_path) if lean and lean.lean_path else "",
        options.default_header,
        sorted(options.allowed_axioms),
        sorted(options.allow_axioms),
        options.allow_native,
    ]
    blob = json.dumps(parts, ensure_ascii=False).encode("utf-8", "surrogatepass")
    return hashlib.blake2b(blob, digest_size=16).hexdigest()


def answer_key(problem: Problem, context: str) -> str:
    """The problem and the context it is checked in, as one digest (`Result.problem_digest`)."""
    return hashlib.blake2b(f"{problem.digest}:{context}".encode(), digest_size=16).hexdigest()


@dataclass
class Resume:
    """A results file opened to go on with: the log to append to, the results
    already final, and the ids dropped to be redone (the model failed on them)."""

    log: AppendLog
    done: dict[str, Result]
    redo: set[str]
    changed: set[str] = field(default_factory=set)  # results dropped because their problem changed
    context: str = ""  # the `checking_context` new results are checked in

    def todo(self, items: Iterable[Problem | ProblemError]) -> int:
        return len({i.id for i in items} - set(self.done))

    def forget_changed(self, items: Iterable[Problem | ProblemError], context: str = "") -> set[str]:
        """Drop the results of problems the input now states otherwise (same id,
        another statement, header, question or answer), or that were checked in
        another `checking_context`, to be solved again: a result answers the
        problem it was solved for, as it was checked. Results written before
        results recorded their problem are kept. The ids dropped."""
        changed: set[str] = set()
        seen: set[str] = set()
        for item in items:
            first = item.id not in seen  # (a later row with the same id is a duplicate, never solved)
            seen.add(item.id)
            done = self.done.get(item.id)
            if not first or done is None or done.problem_digest is None:
                continue
            if isinstance(item, Problem) and done.problem_digest != answer_key(item, context):
                changed.add(item.id)
        for key in changed:
            del self.done[key]
        self.log.drop(changed)
        self.changed, self.context = changed, context
        return changed


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


@dataclass
class Run:
    """Every result a run's output holds (earlier runs' included), and what the input repeated."""

    results: list[Result]
    skipped: int = 0  # finished by an earlier run
    duplicates: int = 0  # ids seen twice in the input
    ran: int = 0  # results this run added


class Watcher(Protocol):
    """What a progress display listens to: each final result, and the loop's events."""

    def result(self, result: Result, /) -> None: ...

    def event(self, event: events.Event, /) -> None: ...


class _Unwatched:
    def result(self, result: Result, /) -> None:
        pass

    def event(self, event: events.Event, /) -> None:
        pass


def unwatched(total: int) -> AbstractContextManager[Watcher]:
    """No progress display."""
    return nullcontext(_Unwatched())


def solve(
    runtime: Runtime,
    budget: Budget,
    items: list[Problem | ProblemError],
    output: Path,
    *,
    concurrency: int = 4,
    cluster: str | None = None,
    announce: Callable[[Resume, int], None] = lambda resume, todo: None,
    watch: Callable[[int], AbstractContextManager[Watcher]] = unwatched,
    say: Say = lambda message: None,
) -> Run:
    """Solve every item `output` does not hold yet; every result it holds when done.

    `announce(resume, todo)` hears what the output held before anything loads;
    `watch(todo)` opens a progress display once the model and Lean are up;
    `say` hears what loading them finds. `cluster`: the Ray cluster to run on
    (an address, `auto` or `local`; None: this machine). Ctrl-C raises
    KeyboardInterrupt with every final result already in `output`.
    """
    resume = open_results(output)
    try:
        context = checking_context(runtime)
        resume.forget_changed(items, context)
        todo = resume.todo(items)
        announce(resume, todo)
        if not todo:
            return Run(list(resume.done.values()), skipped=len(resume.done))
        if cluster is None:
            return interrupts.run(_solve(runtime, budget, items, resume, concurrency, todo, watch, say, open_agent))
        from mathagent.cluster.session import connect

        with connect(cluster):
            return interrupts.run(_solve(runtime, budget, items, resume, concurrency, todo, watch, say, cluster_agent))
    finally:
        resume.log.close()


async def _solve(
    runtime: Runtime,
    budget: Budget,
    items: list[Problem | ProblemError],
    resume: Resume,
    concurrency: int,
    todo: int,
    watch: Callable[[int], AbstractContextManager[Watcher]],
    say: Say,
    opener: AgentOpener,
) -> Run:
    async with opener(runtime, budget, say) as agent:
        with watch(todo) as watcher:
            return await run_problems(
                items, agent, resume, concurrency=concurrency, on_result=watcher.result, on_event=watcher.event
            )


async def run_problems(
    items: Iterable[Problem | ProblemError],
    agent: Agent,
    resume: Resume,
    *,
    concurrency: int = 4,
    on_result: Callable[[Result], None] = lambda r: None,
    on_event: events.Listener = events.ignore,
) -> Run:
    """Solve every item not already in `resume.done`, `concurrency` at a time,
    appending each result to its log as soon as it is final.

    The first row with an id is the one solved; later rows with the same id
    count as duplicates. Each result records `answer_key(problem, resume.context)`."""
    seen: set[str] = set()
    skipped = duplicates = 0
    queue: asyncio.Queue[Problem | ProblemError | None] = asyncio.Queue(maxsize=concurrency * 2)
    results: list[Result] = list(resume.done.values())

    def publish(result: Result) -> None:
        result.settle()  # as its line reads: the summary counts what the file holds
        resume.log.append(result.to_dict())
        results.append(result)
        on_result(result)

    async def produce() -> None:
        nonlocal skipped, duplicates
        for item in items:
            if item.id in seen:
                duplicates += 1
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
                result = await agent.run(item, on_event)
                result.problem_digest = answer_key(item, resume.context)
                publish(result)

    workers = [asyncio.ensure_future(work()) for _ in range(max(1, concurrency))]
    producer = asyncio.ensure_future(produce())
    try:
        await asyncio.gather(producer, *workers)
    finally:
        for task in (producer, *workers):
            task.cancel()
        await asyncio.gather(producer, *workers, return_exceptions=True)
    return Run(results, skipped=skipped, duplicates=duplicates, ran=len(results) - len(resume.done))
