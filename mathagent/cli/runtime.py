"""What batch and chat share: the engine, the Lean verifier and the agent,
built from settings at the CLI edge."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from mathagent.agent.loop import Agent, Budget
from mathagent.agent.records import Problem, ProblemError
from mathagent.batch import BatchRun, Resume, run_batch
from mathagent.cli.common import read_header, verify_options
from mathagent.cli.render import batch_progress
from mathagent.config import Settings
from mathagent.engines import select
from mathagent.engines.base import Engine
from mathagent.engines.openai import OpenAIEngine
from mathagent.errors import ToolchainError
from mathagent.verify.toolchain import LeanToolchain, find_lean
from mathagent.verify.verifier import Verifier, VerifyOptions


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    choice: select.EngineChoice
    toolchain: LeanToolchain | None
    toolchain_problem: str | None  # why there is no Lean, for people
    options: VerifyOptions


def prepare(settings: Settings, project: Path | None, header_file: Path | None) -> Runtime:
    """Decide engine and Lean without loading anything heavy."""
    header = read_header(header_file, project)
    try:
        toolchain, problem = find_lean(settings, project), None
    except ToolchainError as exc:
        toolchain, problem = None, exc.message.splitlines()[0]
    options = verify_options(settings, header, default_pool="warm")  # the loop checks many proofs per header
    return Runtime(settings, select.choose(settings.engine), toolchain, problem, options)


@asynccontextmanager
async def open_agent(
    runtime: Runtime, budget: Budget, say: Callable[[str], None], *, interactive: bool = False
) -> AsyncIterator[Agent]:
    """Load the model and open the Lean pool; close both afterwards."""
    engine = await load_engine(runtime, say, interactive=interactive)
    verifier = Verifier(runtime.toolchain, runtime.options) if runtime.toolchain is not None else None
    try:
        yield Agent(engine, verifier, budget, default_header=runtime.options.default_header)
    finally:
        if verifier is not None:
            await verifier.aclose()
        await engine.aclose()


async def load_engine(runtime: Runtime, say: Callable[[str], None], *, interactive: bool = False) -> Engine:
    """The engine in this process, started (off the event loop: loading takes seconds)."""
    engine = await asyncio.to_thread(
        lambda: select.build(
            runtime.choice, runtime.settings.engine, runtime.settings.cache_dir, say, interactive=interactive
        )
    )
    if isinstance(engine, OpenAIEngine):
        await engine.model()  # reach the server now: a wrong URL fails here, named, not mid-run
    return engine


async def run_with_progress(
    rt: Runtime,
    budget: Budget,
    items: list[Problem | ProblemError],
    resume: Resume,
    concurrency: int,
    err: Console,
    todo: int,
    opener: Callable[[Runtime, Budget, Callable[[str], None]], AbstractAsyncContextManager[Agent]] = open_agent,
) -> BatchRun:
    """Solve the items with a live progress bar (done, verified, rate, ETA) on `err`;
    `opener` gives the agent (by default, the model and Lean in this process)."""
    async with opener(rt, budget, lambda m: err.print(f"[dim]{escape(m)}[/dim]", highlight=False)) as agent:
        with batch_progress(err, total=todo) as progress:
            return await run_batch(
                items, agent, resume, concurrency=concurrency, on_result=progress.result, on_event=progress.event
            )
