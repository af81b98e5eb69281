"""`mathagent eval`: run a benchmark into a run folder and report it; compare runs."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

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
    RoundsOpt,
    SamplesOpt,
    TimeLimitOpt,
    WorkersOpt,
    check_engine,
    check_pool,
    settings_from_flags,
)
from mathagent.errors import InputError

HELP = """Evaluate a model on a benchmark: pass@k, solved-by-round, time split, rejection reasons, and an HTML report with plots.

DATASET is a JSONL file (the formats batch reads) or a name: sample (shipped with mathagent, runs anywhere), minif2f-test, minif2f-valid, gsm8k-test, math500 (taken from the data folder, or downloaded once when online).

Everything lands in a run folder (default runs/DATASET): settings.json (model, engine, sampling, budgets, Lean version, header, mathagent version, dataset hash), results.jsonl (one line per problem), summary.json, report.html and plots/. Re-running the same command resumes it.

`mathagent eval compare RUN_A RUN_B` puts two runs side by side.
"""

EPILOG = """[bold]Examples[/bold]

  mathagent eval sample                                     [dim]# the shipped sample set, any machine[/dim]
  mathagent eval minif2f-test --model internlm2-math-plus-7b --samples 32 --rounds 2
  mathagent eval gsm8k-test --base-url http://127.0.0.1:8000/v1 --solve-samples 8
  mathagent eval compare runs/minif2f-test runs/minif2f-test-repair
"""


def eval_command(
    dataset: str = typer.Argument(..., help="JSONL path, a dataset name, or `compare`.", show_default=False),
    others: list[str] = typer.Argument(None, help="With `compare`: the two run folders.", show_default=False),
    run_dir: Path | None = typer.Option(None, "--run-dir", help="Run folder.  \\[default: runs/DATASET]", show_default=False),
    samples: SamplesOpt = 4,
    rounds: RoundsOpt = 2,
    solve_samples: int = typer.Option(4, "--solve-samples", min=1, max=256, help="Solutions sampled per word problem (pass@k over them; majority answer)."),
    max_tokens: MaxTokensOpt = 2048,
    time_limit: TimeLimitOpt = None,
    concurrency: int = typer.Option(4, "--concurrency", "-c", min=1, help="Problems in flight at once."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Only the first N problems.", show_default=False),
    force: bool = typer.Option(False, "--force", help="Continue a run folder even if its settings differ."),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="Where named datasets live.  \\[default: the user data folder]", show_default=False),
    json_out: bool = typer.Option(False, "--json", help="Print summary.json instead of the table."),
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
    if dataset == "compare":
        compare(others or [])
        return
    # imported here, not at the top: other commands should not pay for them
    from mathagent.agent.loop import Budget
    from mathagent.agent.records import problem_from_row
    from mathagent.batch import open_results
    from mathagent.cli import runtime
    from mathagent.eval import datasets, report
    from mathagent.eval import run as evalrun
    from mathagent.jsonl import read_rows

    if others:
        raise typer.BadParameter(f"unexpected extra arguments: {' '.join(others)}")
    check_engine(engine)
    check_pool(pool)
    data = datasets.resolve(dataset, data_dir)
    folder = run_dir or Path("runs") / data.name
    settings, lake_project = settings_from_flags(
        lean, project, engine=engine, model=model, base_url=base_url, api_key=api_key, workers=workers, pool=pool
    )
    rt = runtime.prepare(settings, lake_project, header_file)
    budget = Budget(
        rounds=rounds,
        samples=samples,
        max_tokens=max_tokens,
        time_limit_s=time_limit,
        solve_samples=solve_samples,
        solve_when_formal=False,  # formal problems are scored by their proof alone
        exhaustive=True,  # pass@k needs every round-1 proof checked
    )
    err = Console(stderr=True)
    if rt.toolchain is None:
        err.print(f"[yellow]warning:[/yellow] {escape(str(rt.toolchain_problem))}; formal problems cannot be solved", highlight=False)
    engine_info = {"kind": rt.choice.kind, "model": rt.choice.model, "base_url": rt.choice.base_url}
    verify_info = {"pool": rt.options.pool, "workers": rt.options.workers, "timeout_s": rt.options.timeout_s, "memory_mb": rt.options.memory_mb}
    record = evalrun.settings_record(data, engine_info, budget, rt.toolchain, rt.options.default_header, verify_info)
    evalrun.prepare_folder(folder, record, force=force)
    items = [problem_from_row(row) for row in read_rows(data.path)][:limit]
    log, done, redo = open_results(folder / evalrun.RESULTS)
    todo = len({i.id for i in items} - set(done))
    err.print(f"{data.name}: {len(items)} problems, {todo} to run, results in {folder}", highlight=False)
    try:
        if todo:
            asyncio.run(runtime.run_with_progress(rt, budget, items, log, done, concurrency, err, todo))
    except KeyboardInterrupt:
        err.print(f"[yellow]interrupted[/yellow]: results so far are in {folder}; run the same command to resume")
        raise typer.Exit(130) from None
    finally:
        log.close()
    m = evalrun.finish(folder)
    if json_out:
        typer.echo(json.dumps(m.to_dict(), indent=2))
    else:
        console = Console()
        console.print(report.terminal_table(m, f"{data.name} · {rt.choice.model or 'model'}"))
        console.print(f"report: {folder / evalrun.REPORT}", highlight=False)


def compare(folders: list[str]) -> None:
    from mathagent.eval import metrics, report
    from mathagent.eval import run as evalrun

    if len(folders) != 2:
        raise typer.BadParameter("compare needs two run folders: mathagent eval compare RUN_A RUN_B")
    a, b = (Path(f) for f in folders)
    rows_a, rows_b = evalrun.load_rows(a), evalrun.load_rows(b)
    if not rows_a and not rows_b:
        raise InputError("both runs are empty")
    ma, mb = metrics.compute(rows_a), metrics.compute(rows_b)
    table = Table(title="runs compared", header_style="bold")
    table.add_column("")
    table.add_column(str(a))
    table.add_column(str(b))
    left, right = dict(report.summary_rows(ma)), dict(report.summary_rows(mb))
    for key in dict.fromkeys([*left, *right]):
        table.add_row(key, left.get(key, "-"), right.get(key, "-"))
    console = Console()
    console.print(table)
    solved_a, solved_b = evalrun.solved_ids(rows_a), evalrun.solved_ids(rows_b)
    only_a, only_b = sorted(solved_a - solved_b), sorted(solved_b - solved_a)
    console.print(f"[bold]solved only by {a}[/bold] ({len(only_a)}): " + (", ".join(only_a) or "-"), highlight=False)
    console.print(f"[bold]solved only by {b}[/bold] ({len(only_b)}): " + (", ".join(only_b) or "-"), highlight=False)
