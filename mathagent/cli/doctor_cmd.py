"""`mathagent doctor`: what was found, what is missing, and how to fix it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table
from rich.text import Text

from mathagent.cli.common import settings_from_flags, settings_rule
from mathagent.cli.render import doctor_table
from mathagent.cli.terminal import SafeConsole
from mathagent.config import Settings

if TYPE_CHECKING:
    from mathagent.cluster.probe import NodeReport

HELP = """Show what this machine can do: Lean and its version, Lake, Mathlib, bubblewrap, vLLM, GPU; what each \
missing piece disables; the command that fixes it.

With --ray, the same for every node of a Ray cluster (the one \\[cluster] address names, else the one running \
here; or --ray ADDRESS): its Lean (Mathlib or prelude-only), bubblewrap, CPUs, GPUs and engines. A node \
without a usable Lean is named: it would get no checks.

Exit status: 0 when a Lean was found (with --ray: on some node), 1 when none was.
"""


def doctor(
    json_out: bool = typer.Option(False, "--json", help="Print the checks as a JSON list."),
    lean: Path | None = typer.Option(
        None, "--lean", help="Check this Lean binary instead of discovering one.", show_default=False
    ),
    project: Path | None = typer.Option(None, "--project", help="Lake project to look in.", show_default=False),
    ray: str | None = typer.Option(
        None,
        "--ray",
        metavar="[ADDRESS]",
        help="Check every node of a Ray cluster instead: the one \\[cluster] address names, else the one running "
        "here (auto); or the cluster at ADDRESS.",
        show_default=False,
        callback=settings_rule("cluster.address"),
    ),
) -> None:
    settings, lake_project = settings_from_flags(lean, project)
    if ray is not None and ray != "off":
        _cluster(settings, lake_project, ray, json_out)
        return
    from mathagent.doctor import run_checks  # here, not at the top: every command loads this module

    checks = run_checks(settings, lake_project)
    if json_out:
        typer.echo(json.dumps([c.as_dict() for c in checks], indent=2))
    else:
        console = SafeConsole()
        console.print(doctor_table(checks))
        if settings.config_files:
            console.print("config: " + ", ".join(str(p) for p in settings.config_files), style="dim")
        console.print(f"Lake project: {lake_project or 'none found'}", style="dim")
    lean_found = checks[0].ok
    raise typer.Exit(0 if lean_found else 1)


def _cluster(settings: Settings, project: Path | None, ray: str, json_out: bool) -> None:
    """Every node of the cluster: what it has, and whether it gets checks."""
    from mathagent.cluster.nodes import named_lean
    from mathagent.cluster.probe import survey
    from mathagent.cluster.session import connect

    # a bare --ray asks about the cluster there is, not about a new local one
    address = ray if ray != "local" else settings.cluster.address or "auto"
    if address in ("off", "local"):
        address = "auto"
    with connect(address):
        reports = survey(named_lean(settings), project)
    if json_out:
        typer.echo(json.dumps([r.as_dict() for r in reports], indent=2))
    else:
        console = SafeConsole()
        for r in reports:
            console.print(node_table(r, settings.cluster.workers_per_node or r.cpus))
        usable = sum(1 for r in reports if r.lean_ok and (settings.cluster.workers_per_node or r.cpus))
        console.print(f"{len(reports)} node(s), {usable} with Lean checks", style="bold")
    raise typer.Exit(0 if any(r.lean_ok for r in reports) else 1)


def node_table(r: NodeReport, workers: int) -> Table:
    """One node: a mark and its name, then what it has, a line each."""
    checks = r.lean_ok and workers > 0
    table = Table(show_header=False, box=None, padding=(0, 1), expand=False)
    table.add_column(no_wrap=True)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    mark = Text("✓", style="green") if checks else Text("✗", style="red")
    table.add_row(mark, f"node {r.short}", f"{r.host}" + (" · head" if r.head else ""))
    table.add_row("", "Lean", r.lean + (f": {r.library}" if r.library else ""))
    table.add_row("", "bubblewrap", Text(r.bubblewrap, style="" if r.bubblewrap_ok else "yellow"))
    table.add_row("", "CPUs, GPUs", f"{r.cpus}, {r.gpus}" + (f" ({'; '.join(r.gpu_names)})" if r.gpu_names else ""))
    table.add_row("", "engines", r.engines)
    if checks:
        verdict = Text(f"{workers} Lean worker{'s' if workers != 1 else ''}")
    else:
        why = "no usable Lean" if not r.lean_ok else "no CPUs for Ray"
        verdict = Text(f"none: {why}", style="yellow")
    table.add_row("", "checks", verdict)
    return table
