"""`mathagent eval`: run a benchmark into a run folder and report it; compare runs."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from mathagent.cli.common import RayCommand, solve_with_progress
from mathagent.cli.options import ProofFlags, RoundsOpt, SamplesOpt, SolvingFlags, deferred_option, flag_groups
from mathagent.cli.terminal import SafeConsole
from mathagent.errors import InputError

HELP = """Evaluate a model on a benchmark: pass@k, solved-by-round, time split, rejection reasons, and an HTML \
report with plots.

DATASET is a JSONL file (the formats batch reads) or a name: sample (shipped with mathagent, runs anywhere), \
minif2f-test, minif2f-valid, gsm8k-test, math500 (taken from the data folder, or downloaded once when online).

Everything lands in a run folder (default runs/DATASET): settings.json (model, engine, sampling, budgets, Lean \
version, header, mathagent version, dataset hash), results.jsonl (one line per problem), summary.json, \
report.html and plots/. Re-running the same command resumes it.

`mathagent eval compare RUN_A RUN_B` puts two runs side by side; `mathagent eval rescore RUN` judges a run's answers \
again with the current checker. `mathagent eval DATASET --help` lists the \
run's options.
"""

EPILOG = """[bold]Examples[/bold]

  mathagent eval sample                                     [dim]# the shipped sample set, any machine[/dim]
  mathagent eval minif2f-test --model internlm2-math-plus-7b --samples 32 --rounds 2
  mathagent eval minif2f-test --samples 32 --rounds 2 --ray auto   [dim]# Lean and vLLM on every node[/dim]
  mathagent eval gsm8k-test --base-url http://127.0.0.1:8000/v1 --solve-samples 8
  mathagent eval compare runs/minif2f-test runs/minif2f-test-repair
"""


class _RunUnlessCompare(TyperGroup):
    """`mathagent eval DATASET ...` runs a benchmark (the `run` subcommand);
    `compare` and `rescore` are subcommands of their own."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # a click Context
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["run", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_RunUnlessCompare,
    help=HELP,
    epilog=EPILOG,
    no_args_is_help=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.command(
    "run",
    cls=RayCommand,
    help="Run a benchmark into a run folder (the default: `mathagent eval DATASET` is `mathagent eval run DATASET`).",
)
@flag_groups
def run_command(
    dataset: str = typer.Argument(..., help="JSONL path or a dataset name.", show_default=False),
    run_dir: Path | None = deferred_option("--run-dir", help="Run folder.", default="runs/DATASET"),
    samples: SamplesOpt = 4,
    rounds: RoundsOpt = 2,
    solve_samples: int = typer.Option(
        4,
        "--solve-samples",
        min=1,
        max=256,
        help="Solutions sampled per word problem (pass@k over them; majority answer).",
    ),
    proof: ProofFlags = ProofFlags(),
    concurrency: int = typer.Option(4, "--concurrency", "-c", min=1, help="Problems in flight at once."),
    limit: int | None = deferred_option("--limit", min=1, help="Only the first N problems."),
    force: bool = typer.Option(False, "--force", help="Continue a run folder even if its settings differ."),
    data_dir: Path | None = deferred_option(
        "--data-dir", help="Where named datasets live.", default="the user data folder"
    ),
    json_out: bool = typer.Option(False, "--json", help="Print summary.json instead of the table."),
    solving: SolvingFlags = SolvingFlags(),
) -> None:
    started = time.monotonic()
    # imported here, not at the top: other commands should not pay for them
    from mathagent.cli.render import wall_time
    from mathagent.eval import datasets, report
    from mathagent.eval import run as evalrun
    from mathagent.pipeline import read_problems

    data = datasets.resolve(dataset, data_dir)
    folder = run_dir or Path("runs") / data.name
    err = SafeConsole(stderr=True)
    rt, cluster = solving.runtime(err, without_lean="formal problems cannot be solved")
    budget = proof.budget(
        rounds=rounds,
        samples=samples,
        solve_samples=solve_samples,
        solve_when_formal=False,  # formal problems are scored by their proof alone
        exhaustive=True,  # pass@k needs every round-1 proof checked
    )
    engine_info = {"kind": rt.choice.kind, "model": rt.choice.model, "base_url": rt.choice.base_url}
    verify_info = {
        "pool": rt.options.pool,
        "workers": rt.options.workers,
        "timeout_s": rt.options.timeout_s,
        "memory_mb": rt.options.memory_mb,
        # where it ran does not change the numbers: not among the settings a resume must keep
        **({"ray": cluster} if cluster else {}),
    }
    record = evalrun.settings_record(data, engine_info, budget, rt.toolchain, rt.options.default_header, verify_info)
    evalrun.prepare_folder(folder, record, force=force)
    items = read_problems(data.path, limit)
    run = solve_with_progress(
        rt,
        budget,
        items,
        folder / evalrun.RESULTS,
        concurrency,
        err,
        announce=lambda resume, todo: f"{data.name}: {len(items)} problems, {todo} to run, results in {folder}",
        interrupted=f"results so far are in {folder}; run the same command to resume",
        cluster=cluster,
    )
    m = evalrun.finish(folder, run.results)
    if json_out:
        typer.echo(json.dumps(m.to_dict(), indent=2))
    else:
        console = SafeConsole()
        wall = ("wall time", wall_time(time.monotonic() - started, ran=run.ran, problems=m.problems))
        console.print(report.terminal_table(m, f"{data.name} · {rt.choice.model or 'model'}", extra=[wall]))
        for note in m.notes:
            console.print(f"[dim]note[/dim] {escape(note)}", highlight=False)
        console.print(f"report: {folder / evalrun.REPORT}", highlight=False)


@app.command(
    "compare", help="Put two run folders side by side: every number, and which problems only one of them solved."
)
def compare(
    run_a: Path = typer.Argument(..., help="A run folder (runs/DATASET).", show_default=False),
    run_b: Path = typer.Argument(..., help="Another run folder.", show_default=False),
) -> None:
    from mathagent.eval import report
    from mathagent.eval import run as evalrun
    from mathagent.eval.metrics import solved_ids, summarize

    results_a, results_b = evalrun.load_results(run_a), evalrun.load_results(run_b)
    if not results_a and not results_b:
        raise InputError("both runs are empty")
    ma, mb = summarize(results_a), summarize(results_b)
    table = Table(title="runs compared", header_style="bold")
    table.add_column("")
    table.add_column(str(run_a))
    table.add_column(str(run_b))
    left, right = dict(report.summary_rows(ma)), dict(report.summary_rows(mb))
    for key in dict.fromkeys([*left, *right]):
        table.add_row(key, left.get(key, "-"), right.get(key, "-"))
    console = SafeConsole()
    console.print(table)
    solved_a, solved_b = solved_ids(results_a), solved_ids(results_b)
    only_a, only_b = sorted(solved_a - solved_b), sorted(solved_b - solved_a)
    console.print(
        f"[bold]solved only by {run_a}[/bold] ({len(only_a)}): " + (", ".join(only_a) or "-"), highlight=False
    )
    console.print(
        f"[bold]solved only by {run_b}[/bold] ({len(only_b)}): " + (", ".join(only_b) or "-"), highlight=False
    )


@app.command(
    "rescore",
    help="Judge a finished run's answers again with the current answer checker and rewrite its summary and report "
    "(old runs upgrade without generating anything again).",
)
def rescore(
    run: Path = typer.Argument(..., help="A run folder (runs/DATASET).", show_default=False),
    json_out: bool = typer.Option(False, "--json", help="Print summary.json instead of the table."),
) -> None:
    from mathagent.eval import report
    from mathagent.eval import run as evalrun

    changed = evalrun.rescore(run)
    m = evalrun.finish(run)
    if json_out:
        typer.echo(json.dumps(m.to_dict(), indent=2))
        return
    console = SafeConsole()
    console.print(report.terminal_table(m, f"{run} · rescored"))
    console.print(f"{changed} result(s) changed; report: {run / evalrun.REPORT}", highlight=False)
