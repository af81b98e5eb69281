"""`mathagent solve`: a worked solution and an answer, cross-checked by sympy; or a Lean statement proved."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.text import Text

from mathagent import interrupts
from mathagent.cli.common import dim_printer, settings_from_flags, solving_runtime
from mathagent.cli.options import EngineFlags, LeanFlags, RoundsOpt, SearchFlags, deferred_option, flag_groups
from mathagent.cli.terminal import SafeConsole
from mathagent.config import Settings
from mathagent.jsonl import dumps
from mathagent.verify.leantext import starts_with_theorem
from mathagent.vocabulary import AnswerCheck

if TYPE_CHECKING:
    from mathagent.agent.budget import Budget
    from mathagent.agent.records import Result
    from mathagent.agent.solve import SolveResult
    from mathagent.engines import select
    from mathagent.engines.base import Engine

HELP = """Solve a math problem in natural language and report the final answer; or prove a Lean statement.

The model writes a worked solution; the final answer is taken from \\boxed{...}. Where the problem is \
computational (evaluate an expression, roots of a polynomial equation, their sum, product or count), sympy \
computes the answer on its own and the output says [bold]answer checked[/bold] or [bold]answer \
disagrees[/bold]; otherwise [bold]not checked[/bold].

A PROBLEM that is a Lean statement (`theorem name ... :=`) is proved instead, under --header-file, with \
--strategy (whole proofs repaired with Lean's errors, the tactic search, or both), and checked by Lean: \
the exit status is 0 only for a verified proof.

Which model: --base-url (any OpenAI-compatible server), else --model (in-process vLLM), else \
InternLM2-Math-Plus-7B on a GPU, else the small embedded CPU model.
"""

EPILOG = """[bold]Examples[/bold]

  mathagent solve "What is the sum of the roots of x^2 - 5x + 6 = 0?"
  mathagent solve "What is 2+3?" --samples 4 --json
  mathagent solve "..." --model internlm/internlm2-math-plus-7b            [dim]# in-process vLLM on a GPU[/dim]
  mathagent solve "..." --base-url http://127.0.0.1:23333/v1               [dim]# LMDeploy / vllm serve[/dim]
  mathagent solve "theorem t (a b : ℝ) (h : a = b) : b = a :=" --strategy tactic   [dim]# prove it (Mathlib)[/dim]
"""


@flag_groups
def solve_command(
    problem: str = typer.Argument(..., help="The problem, in words (LaTeX welcome)."),
    samples: int = typer.Option(
        1, "--samples", "-k", min=1, max=256, help="Draw k solutions and report the majority answer."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the structured result as JSON."),
    max_tokens: int | None = deferred_option("--max-tokens", min=1, help="Tokens per solution.", default="1024"),
    temperature: float | None = deferred_option(
        "--temperature", min=0.0, help="Sampling temperature.", default="0 for one sample, 0.7 for more"
    ),
    seed: int | None = typer.Option(None, "--seed", help="Sampling seed, for reproducible samples."),
    engine: EngineFlags = EngineFlags(),
    search: SearchFlags = SearchFlags(),
    rounds: RoundsOpt = 4,
    lean: LeanFlags = LeanFlags(),
) -> None:
    from mathagent.engines import select

    if not problem.strip():
        raise typer.BadParameter("the problem is empty", param_hint="PROBLEM")
    if starts_with_theorem(problem):
        from mathagent.agent.budget import Budget

        budget = search.budget(rounds=rounds, samples=samples, max_tokens=max_tokens or Budget.max_tokens)
        settings, lake_project = lean.settings(engine=engine.overrides())
        proved = interrupts.run(_prove(settings, lake_project, lean.header_file, problem, budget))
        if json_out:
            typer.echo(dumps(proved.to_dict(), indent=2))
        else:
            _show_proof(SafeConsole(), proved)
        raise typer.Exit(0 if proved.verified else 1)
    settings, _ = settings_from_flags(project=lean.project, engine=engine.overrides())  # no Lean runs here
    choice = select.choose(settings.engine)
    overrides = {
        k: v for k, v in (("max_tokens", max_tokens), ("temperature", temperature), ("seed", seed)) if v is not None
    }
    result = interrupts.run(_run(choice, settings, problem, samples, overrides, dim_printer(SafeConsole(stderr=True))))
    if json_out:
        typer.echo(dumps(result.to_dict(), indent=2))
    else:
        _show(SafeConsole(), result)


async def _prove(
    settings: Settings, project: Path | None, header_file: Path | None, statement: str, budget: Budget
) -> Result:
    """Prove one Lean statement with the agent (its header, Lean and model as batch has them)."""
    from mathagent import pipeline
    from mathagent.agent.records import Problem

    runtime = solving_runtime(settings, project, header_file)
    statement = statement if ":=" in statement else statement + " :="
    async with pipeline.open_agent(runtime, budget, dim_printer(SafeConsole(stderr=True))) as agent:
        return await agent.run(Problem(id="solve", formal_statement=statement), budget=replace(budget, solve=False))


def _show_proof(console: Console, result: Result) -> None:
    if result.verified:
        from rich.syntax import Syntax  # only a proved theorem needs it (and it takes 8 ms to import)

        console.print(Syntax(result.theorem_text() or "", "lean4", word_wrap=True))
        how = "by the tactic search" if result.verified_attempt is None and result.search else "as a whole proof"
        console.print(Text(f"✓ verified by Lean (found {how})", style="bold green"))
    else:
        why = result.note or result.error or "no proof passed Lean within the budget"
        console.print(Text(f"✗ not verified: {why}", style="bold red"))
    if result.search:
        search = result.search
        console.print(
            Text(
                f"tactic search: {search['stop']}, {search['expansions']} states, {search['tactics_run']} tactics",
                style="dim",
            )
        )
    console.print(Text(f"{result.model} · {result.completion_tokens} tokens · {result.wall_s:.1f}s", style="dim"))


async def _run(
    choice: select.EngineChoice,
    settings: Settings,
    problem: str,
    samples: int,
    overrides: dict[str, Any],
    say: Callable[[str], None],
) -> SolveResult:
    from mathagent.agent.solve import solve
    from mathagent.engines import select

    engine: Engine = await asyncio.to_thread(
        lambda: select.build(choice, settings.engine, settings.cache_dir, say, interactive=True)
    )
    try:
        return await solve(problem, engine, samples=samples, overrides=overrides)
    finally:
        await engine.aclose()


def _show(console: Console, result: SolveResult) -> None:
    from rich.markdown import Markdown

    console.print(Markdown(result.solution or "_(the model wrote nothing)_"))
    console.print()
    line = Text("Answer: ", style="bold")
    line.append(result.answer if result.answer is not None else "(none found)", style="bold cyan")
    if len(result.samples) > 1 and result.votes:
        line.append(f"   majority {result.votes[0][1]}/{len(result.samples)}", style="dim")
    console.print(line)
    style = {AnswerCheck.CHECKED: "bold green", AnswerCheck.DISAGREES: "bold red"}.get(result.check, "yellow")
    mark = {AnswerCheck.CHECKED: "✓ ", AnswerCheck.DISAGREES: "✗ "}.get(result.check, "")
    status = Text(mark + result.check, style=style)
    status.append(f"  ({result.check_detail})", style="dim")
    console.print(status)
    console.print(Text(f"{result.model} · {result.completion_tokens} tokens · {result.time_s:.1f}s", style="dim"))
