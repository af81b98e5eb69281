"""`mathagent batch`: solve a JSONL of problems, one result line each, resumable."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.table import Table

from mathagent.cli.common import need_jsonl, solve_with_progress
from mathagent.cli.options import ProofFlags, RoundsOpt, SamplesOpt, SolvingFlags, deferred_option, flag_groups
from mathagent.cli.render import wall_time
from mathagent.cli.terminal import SafeConsole

if TYPE_CHECKING:
    from mathagent.eval.metrics import Metrics
    from mathagent.pipeline import Resume, Run

HELP = """Solve every problem in a JSONL file and append one result per line to the output as soon as it is final.

Rows are read as the field writes them: `name`/`id`, `informal_statement`/`problem`, `formal_statement`, \
`header`, `answer` (miniF2F, DeepSeek-Prover, Lean-Workbook, MATH-style). Each problem is solved in words, \
stated in Lean (given or autoformalized), proved, verified and repaired with Lean's errors, within the budget.

Run the same command again to resume: ids already in the output are skipped, unless the input now states that \
problem otherwise or it would be checked otherwise (another header, Lean, modules or axiom policy: its result is \
then replaced); nothing is lost or written twice, even after kill -9. Ctrl-C stops cleanly.
"""

EPILOG = """[bold]Examples[/bold]

  mathagent batch examples/problems.jsonl -o runs/problems.jsonl --header-file examples/prelude_header.lean
  mathagent batch examples/problems.jsonl -o runs/served.jsonl --base-url http://127.0.0.1:8000/v1 -c 16
  mathagent batch examples/problems.jsonl -o runs/k8.jsonl --samples 8 --rounds 2 --json | jq .verified
  mathagent batch examples/problems.jsonl -o runs/cluster.jsonl --samples 32 -c 64 --ray auto  [dim]# on Ray[/dim]
"""


@flag_groups
def batch(
    problems: Path = typer.Argument(..., help="JSONL file of problems.", show_default=False),
    output: Path | None = deferred_option(
        "--output", "-o", help="Results JSONL (appended; resumed).", default="PROBLEMS.results.jsonl"
    ),
    concurrency: int = typer.Option(
        4, "--concurrency", "-c", min=1, help="Problems in flight at once (they share the model and the Lean workers)."
    ),
    rounds: RoundsOpt = 4,
    samples: SamplesOpt = 4,
    proof: ProofFlags = ProofFlags(),
    no_solve: bool = typer.Option(
        False, "--no-solve", help="Skip the natural-language solution when a formal statement is given."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON instead of a table."),
    solving: SolvingFlags = SolvingFlags(),
) -> None:
    started = time.monotonic()
    # imported here, not at the top: other commands should not pay for them
    from mathagent.eval.metrics import summarize
    from mathagent.pipeline import read_problems

    need_jsonl(
        problems,
        kind="a JSONL file of problems",
        hint="give a JSONL file of problems, one per line (see examples/problems.jsonl)",
    )
    output = output or problems.with_name(problems.stem + ".results.jsonl")
    err = SafeConsole(stderr=True)
    rt, cluster = solving.runtime(err, without_lean="results will be unverified")
    budget = proof.budget(rounds=rounds, samples=samples, solve_when_formal=not no_solve)
    run = solve_with_progress(
        rt,
        budget,
        read_problems(problems),
        output,
        concurrency,
        err,
        announce=_resuming,
        interrupted=f"finished results are in {output}; run the same command to resume",
        cluster=cluster,
    )
    wall_s = time.monotonic() - started
    m = summarize(run.results)
    if json_out:
        typer.echo(json.dumps({**summary_dict(m, run, wall_s), "output": str(output)}, indent=2))
    else:
        console = SafeConsole()
        console.print(summary_table(m, run, wall_s, output, samples=samples))
        if m.notes or m.error_messages:
            console.print(note_lines(m), highlight=False)
    raise typer.Exit(0 if m.errors == 0 else 1)


def _resuming(resume: Resume, todo: int) -> str | None:
    if not resume.done and not resume.redo and not resume.changed:
        return None
    again = [f"retrying {len(resume.redo)} that failed on the model"] if resume.redo else []
    if resume.changed:
        again.append(f"solving {len(resume.changed)} again whose problem, header or axiom policy changed")
    more = f" ({'; '.join(again)})" if again else ""
    return f"resuming: {len(resume.done)} results already in {resume.log.path}, {todo} to go{more}"


def summary_dict(m: Metrics, run: Run, wall_s: float) -> dict[str, Any]:
    """The batch command's view of a run's numbers (`--json`): the summary of
    every result the output holds, and what only this run knows (its wall time,
    the problems it ran, those it skipped as done, the ids the input repeated)."""
    return {
        "problems": m.problems,
        "verified": m.verified,
        "answer_checked": m.answer_checked,
        "answer_disagrees": m.answer_disagrees,
        "reference_matches": m.reference_matches,
        "with_reference": m.with_reference,
        "unverified": m.unverified,
        "answered": m.answered,
        "bad_statement": m.bad_statement,
        "errors": m.errors,
        "formal": m.formal,
        "verified_first_round": m.verified_first_round,  # pass@k without repair, k = first_round_samples
        "first_round_samples": m.formal_samples,
        "attempts_per_verified": m.attempts_per_solved,
        "model_s": round(m.model_s, 1),  # summed over every result (they overlap)
        "lean_s": round(m.lean_s, 1),
        "problem_s": round(m.wall_s, 1),  # each result's own wall time, summed (they overlap)
        "wall_s": round(wall_s, 1),  # the real wall time of this run, which solved `ran` of the problems
        "ran": run.ran,
        "completion_tokens": m.completion_tokens,
        "skipped": run.skipped,
        "duplicates": run.duplicates,
        "error_messages": list(m.error_messages),
        "notes": list(m.notes),
        **({"search": search} if (search := m.search_summary()) else {}),
    }


def summary_table(m: Metrics, run: Run, wall_s: float, output: Path, *, samples: int) -> Table:
    """The summary for people; `samples`: the proofs asked for per problem in
    round 1 (the k of pass@k when no result says otherwise)."""
    table = Table(title=f"batch summary · {output}", show_header=False, title_style="bold")
    table.add_column(style="bold")
    table.add_column(justify="right")
    n = max(1, m.problems)
    k = m.formal_samples or samples
    rows = [
        ("problems", f"{m.problems}" + (f" ({run.skipped} from earlier runs)" if run.skipped else "")),
        ("solved with a verified proof", f"{m.verified} ({m.verified / n:.0%})"),
        (
            f"  pass@{k}: verified in round 1, no repair",
            f"{m.verified_first_round} of {m.formal} formal ({m.verified_first_round / m.formal:.0%})"
            if m.formal
            else "- (no formal problems)",
        ),
        (
            "  attempts per verified problem",
            f"{m.attempts_per_solved}" if m.attempts_per_solved is not None else "-",
        ),
        ("answer checked by sympy", f"{m.answer_checked}"),
        ("answer disagrees with sympy", f"{m.answer_disagrees}"),
        (
            "answer matches the dataset's answer",
            f"{m.reference_matches} of {m.with_reference}" if m.with_reference else "-",
        ),
        ("failed (no verified proof)", f"{m.unverified + m.answered}"),
        ("statement does not elaborate", f"{m.bad_statement}"),
        ("errors", f"{m.errors}"),
        ("wall time", wall_time(wall_s, ran=run.ran, problems=m.problems)),
        (
            "model / Lean / problem time (summed)",
            f"{m.model_s:.1f}s / {m.lean_s:.1f}s / {m.wall_s:.1f}s",  # as rounded in `summary_dict`
        ),
        ("generated tokens", f"{m.completion_tokens}"),
    ]
    if m.searched:
        found = f"{m.search_solved} proof(s) found in {m.searched} search(es)"
        rows.append(("tactic search", f"{found}; {m.search_expansions} states, {m.search_tactics} tactics"))
    if run.duplicates:
        rows.append(("duplicate ids skipped", str(run.duplicates)))
    for label, value in rows:
        table.add_row(label, value)
    return table


def note_lines(m: Metrics) -> str:
    """The commonest notes (why results went no further) and errors, with counts."""
    notes = [f"[dim]note[/dim] {escape(x)}" for x in m.notes]
    return "\n".join([*notes, *(f"[red]error[/red] {escape(x)}" for x in m.error_messages)])
