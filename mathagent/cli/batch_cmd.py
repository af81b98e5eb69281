"""`mathagent batch`: solve a JSONL of problems, one result line each, resumable."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape
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
    RayOpt,
    RoundsOpt,
    SamplesOpt,
    TimeLimitOpt,
    WorkersOpt,
    check_engine,
    check_pool,
    need_file,
)
from mathagent.cli.render import wall_time

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

  mathagent batch examples/problems.jsonl -o runs/problems.jsonl --header-file examples/prelude_header.lean
  mathagent batch examples/problems.jsonl -o runs/served.jsonl --base-url http://127.0.0.1:8000/v1 -c 16
  mathagent batch examples/problems.jsonl -o runs/k8.jsonl --samples 8 --rounds 2 --json | jq .verified
  mathagent batch examples/problems.jsonl -o runs/cluster.jsonl --samples 32 -c 64 --ray auto  [dim]# on Ray[/dim]
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
    ray: RayOpt = None,
) -> None:
    started = time.monotonic()
    # imported here, not at the top: other commands should not pay for them
    from mathagent.agent.loop import Budget
    from mathagent.cli import pipeline

    check_engine(engine)
    check_pool(pool)
    need_file(
        problems,
        kind="a JSONL file of problems",
        hint="give a JSONL file of problems, one per line (see examples/problems.jsonl)",
    )
    output = output or problems.with_name(problems.stem + ".results.jsonl")
    rt, cluster = pipeline.prepare(
        lean,
        project,
        header_file,
        engine={"kind": engine, "model": model, "base_url": base_url, "api_key": api_key},
        verify={"workers": workers, "pool": pool},
        cluster={"address": ray},
    )
    err = Console(stderr=True)
    if cluster is None:  # on a cluster, the nodes' Lean counts, and the checker says what it found
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
        cluster=cluster,
    )
    summary = run.summary(wall_s=time.monotonic() - started)
    if json_out:
        typer.echo(json.dumps({**summary.to_dict(), "output": str(output)}, indent=2))
    else:
        console = Console()
        console.print(summary_table(summary, output, samples=samples))
        if summary.notes or summary.error_messages:
            console.print(note_lines(summary), highlight=False)
    raise typer.Exit(0 if summary.errors == 0 else 1)


def _resuming(resume: Resume, todo: int) -> str | None:
    if not resume.done and not resume.redo:
        return None
    again = f" (retrying {len(resume.redo)} that failed on the model)" if resume.redo else ""
    return f"resuming: {len(resume.done)} results already in {resume.log.path}, {todo} to go{again}"


def summary_table(s: BatchSummary, output: Path, *, samples: int) -> Table:
    """The summary for people; `samples`: the proofs asked for per problem in
    round 1 (the k of pass@k when no result says otherwise)."""
    table = Table(title=f"batch summary · {output}", show_header=False, title_style="bold")
    table.add_column(style="bold")
    table.add_column(justify="right")
    n = max(1, s.problems)
    k = s.first_round_samples or samples
    rows = [
        ("problems", f"{s.problems}" + (f" ({s.skipped} from earlier runs)" if s.skipped else "")),
        ("solved with a verified proof", f"{s.verified} ({s.verified / n:.0%})"),
        (
            f"  pass@{k}: verified in round 1, no repair",
            f"{s.verified_first_round} of {s.formal} formal ({s.verified_first_round / s.formal:.0%})"
            if s.formal
            else "- (no formal problems)",
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
        ("wall time", wall_time(s)),
        (
            "model / Lean / problem time (summed)",
            f"{s.model_s:.1f}s / {s.lean_s:.1f}s / {s.problem_s:.1f}s",
        ),
        ("generated tokens", f"{s.completion_tokens}"),
    ]
    if s.duplicates:
        rows.append(("duplicate ids skipped", str(s.duplicates)))
    for label, value in rows:
        table.add_row(label, value)
    return table


def note_lines(s: BatchSummary) -> str:
    """The commonest notes (why results went no further) and errors, with counts."""
    notes = [f"[dim]note[/dim] {escape(m)}" for m in s.notes]
    return "\n".join([*notes, *(f"[red]error[/red] {escape(m)}" for m in s.error_messages)])
