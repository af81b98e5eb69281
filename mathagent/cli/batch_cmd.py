"""`mathagent batch`: solve a JSONL of problems, one result line each, resumable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from mathagent.cli.common import (
    ApiKeyOpt,
    BaseUrlOpt,
    EngineOpt,
    HeaderFileOpt,
    LeanOpt,
    MaxTokensOpt,
    ModelOpt,
    PoolOpt,
    ProjectOpt,
    RoundsOpt,
    SamplesOpt,
    TimeLimitOpt,
    WorkersOpt,
    check_engine,
    check_pool,
    settings_from_flags,
)
from mathagent.errors import InputError

if TYPE_CHECKING:
    from mathagent.batch import BatchSummary, Resume

HELP = """Solve every problem in a JSONL file and append one result per line to the output as soon as it is final.

Rows are read as the field writes them: `name`/`id`, `informal_statement`/`problem`, `formal_statement`, \
`header`, `answer` (miniF2F, DeepSeek-Prover, Lean-Workbook, MATH-style). Each problem is solved in words, \
stated in Lean (given or autoformalized), proved, verified and repaired with Lean's errors, within the budget.

Run the same command again to resume: ids already in the output are skipped; nothing is lost or written twice, \
even after kill -9. Ctrl-C stops cleanly.
"""

EPILOG = """[bold]Examples[/bold]

  mathagent batch minif2f_test.jsonl -o results.jsonl --samples 8 --rounds 2
  mathagent batch problems.jsonl -o out.jsonl --base-url http://127.0.0.1:8000/v1 --concurrency 16
  mathagent batch problems.jsonl -o out.jsonl --json | jq .verified
"""


def batch(
    problems: Path = typer.Argument(..., help="JSONL file of problems.", show_default=False),
    output: Path | None = typer.Option(
        None,
        "--output",
        "-o",
        help="Results JSONL (appended; resumed).  \\[default: PROBLEMS.results.jsonl]",
        show_default=False,
    ),
    concurrency: int = typer.Option(
        4, "--concurrency", "-c", min=1, help="Problems in flight at once (they share the model and the Lean workers)."
    ),
    rounds: RoundsOpt = 4,
    samples: SamplesOpt = 4,
    max_tokens: MaxTokensOpt = 2048,
    time_limit: TimeLimitOpt = None,
    no_solve: bool = typer.Option(
        False, "--no-solve", help="Skip the natural-language solution when a formal statement is given."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON instead of a table."),
    engine: EngineOpt = None,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    workers: WorkersOpt = None,
    pool: PoolOpt = None,
    lean: LeanOpt = None,
    project: ProjectOpt = None,
    header_file: HeaderFileOpt = None,
) -> None:
    # imported here, not at the top: other commands should not pay for them
    from mathagent.agent.loop import Budget
    from mathagent.cli import pipeline, runtime

    check_engine(engine)
    check_pool(pool)
    if not problems.is_file():
        raise InputError(f"no such file: {problems}", hint="give a JSONL file of problems")
    output = output or problems.with_name(problems.stem + ".results.jsonl")
    settings, lake_project = settings_from_flags(
        lean, project, engine=engine, model=model, base_url=base_url, api_key=api_key, workers=workers, pool=pool
    )
    rt = runtime.prepare(settings, lake_project, header_file)
    err = Console(stderr=True)
    pipeline.warn_without_lean(rt, err, "results will be unverified")
    budget = Budget(
        rounds=rounds, samples=samples, max_tokens=max_tokens, time_limit_s=time_limit, solve_when_formal=not no_solve
    )
    run = pipeline.solve(
        rt,
        budget,
        pipeline.read_problems(problems),
        output,
        concurrency,
        err,
        announce=_resuming,
        interrupted=f"finished results are in {output}; run the same command to resume",
    )
    summary = run.summary()
    if json_out:
        typer.echo(json.dumps({**summary.to_dict(), "output": str(output)}, indent=2))
    else:
        console = Console()
        console.print(summary_table(summary, output))
        if summary.error_messages:
            console.print(error_lines(summary), highlight=False)
    raise typer.Exit(0 if summary.errors == 0 else 1)


def _resuming(resume: Resume, todo: int) -> str | None:
    if not resume.done and not resume.redo:
        return None
    again = f" (retrying {len(resume.redo)} that failed on the model)" if resume.redo else ""
    return f"resuming: {len(resume.done)} results already in {resume.log.path}, {todo} to go{again}"


def summary_table(s: BatchSummary, output: Path) -> Table:
    table = Table(title=f"batch summary · {output}", show_header=False, title_style="bold")
    table.add_column(style="bold")
    table.add_column(justify="right")
    n = max(1, s.problems)
    rows = [
        ("problems", f"{s.problems}" + (f" ({s.skipped} from earlier runs)" if s.skipped else "")),
        ("solved with a verified proof", f"{s.verified} ({s.verified / n:.0%})"),
        (
            f"  pass@{s.first_round_samples or 'k'}: verified in round 1, no repair",
            f"{s.verified_first_round} ({s.verified_first_round / n:.0%})",
        ),
        (
            "  attempts per verified problem",
            f"{s.attempts_per_verified}" if s.attempts_per_verified is not None else "-",
        ),
        ("answer checked by sympy", f"{s.answer_checked}"),
        ("answer disagrees with sympy", f"{s.answer_disagrees}"),
        (
            "answer matches the dataset's answer",
            f"{s.reference_matches} of {s.with_reference}" if s.with_reference else "-",
        ),
        ("failed (no verified proof)", f"{s.unverified + s.answered}"),
        ("statement does not elaborate", f"{s.bad_statement}"),
        ("errors", f"{s.errors}"),
        ("time: model / Lean / wall (summed)", f"{s.model_s:.1f}s / {s.lean_s:.1f}s / {s.wall_s:.1f}s"),
        ("generated tokens", f"{s.completion_tokens}"),
    ]
    if s.duplicates:
        rows.append(("duplicate ids skipped", str(s.duplicates)))
    for label, value in rows:
        table.add_row(label, value)
    return table


def error_lines(s: BatchSummary) -> str:
    return "\n".join(f"[red]error[/red] {m}" for m in s.error_messages)
