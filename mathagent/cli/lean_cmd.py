"""`mathagent lean ...`: manage the Lean toolchain and the Lake project."""

from __future__ import annotations

import shlex
from pathlib import Path

import typer
from rich.markup import escape

from mathagent.cli.common import settings_from_flags
from mathagent.cli.terminal import SafeConsole

app = typer.Typer(help="Manage the Lean toolchain and Mathlib for the Lake project.", no_args_is_help=True)


@app.command("setup")
def setup(
    project: Path | None = typer.Option(
        None, "--project", help="Lake project to set up.  \\[default: this checkout]", show_default=False
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Check the preconditions and print the commands, run nothing."
    ),
) -> None:
    """Install the pinned Lean (lean-toolchain) with elan and fetch Mathlib's build cache with Lake.

    Needs elan and network; without them it stops at once and says what is missing
    (--dry-run lists all of it, and the commands setup would run).
    """
    from mathagent import lean_setup  # here, not at the top: every command loads this module

    _, lake_project = settings_from_flags(project=project)
    todo = lean_setup.plan(lake_project, dry_run=dry_run)
    console = SafeConsole()
    if dry_run:
        err = SafeConsole(stderr=True)
        for missing in todo.missing:
            err.print(f"[bold red]missing:[/bold red] {escape(missing.what)}", highlight=False)
            err.print(f"[dim]fix:[/dim] {escape(missing.fix)}", highlight=False)
        would = "would run" if not todo.missing else "would run (not yet: it lacks what is reported missing)"
        console.print(f"In {escape(str(todo.project))}, setup {would}:", highlight=False)
        for step in todo.steps:
            console.print(f"  [bold]{escape(step.title)}[/bold]: {escape(shlex.join(step.argv))}", highlight=False)
        raise typer.Exit(2 if todo.missing else 0)
    lean_setup.run(todo, lambda s: console.rule(f"[bold]{s.title}"))
    console.print("[green]done.[/green] `mathagent doctor` should now show Lean and Mathlib.")
