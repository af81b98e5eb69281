"""`mathagent doctor`: what was found, what is missing, and how to fix it."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from mathagent.cli.common import settings_from_flags
from mathagent.cli.render import doctor_table
from mathagent.doctor import run_checks

HELP = """Show what this machine can do: Lean and its version, Lake, Mathlib, bubblewrap, vLLM, GPU; what each \
missing piece disables; the command that fixes it.

Exit status: 0 when a Lean was found, 1 when none was.
"""


def doctor(
    json_out: bool = typer.Option(False, "--json", help="Print the checks as a JSON list."),
    lean: Path | None = typer.Option(
        None, "--lean", help="Check this Lean binary instead of discovering one.", show_default=False
    ),
    project: Path | None = typer.Option(None, "--project", help="Lake project to look in.", show_default=False),
) -> None:
    settings, lake_project = settings_from_flags(lean, project)
    checks = run_checks(settings, lake_project)
    if json_out:
        typer.echo(json.dumps([c.as_dict() for c in checks], indent=2))
    else:
        console = Console()
        console.print(doctor_table(checks))
        if settings.config_files:
            console.print("config: " + ", ".join(str(p) for p in settings.config_files), style="dim")
        console.print(f"Lake project: {lake_project or 'none found'}", style="dim")
    lean_found = checks[0].ok
    raise typer.Exit(0 if lean_found else 1)
