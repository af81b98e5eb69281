"""The `mathagent` command line: thin typer commands over the core."""

from __future__ import annotations

import gc
import os
import sys

import typer
from rich.markup import escape

from mathagent.cli import (
    batch_cmd,
    chat,
    doctor_cmd,
    eval_cmd,
    help_format,
    lean_cmd,
    model_cmd,
    serve_cmd,
    solve_cmd,
    verify_cmd,
)
from mathagent.cli.common import RayCommand, state
from mathagent.cli.terminal import SafeConsole
from mathagent.errors import MathAgentError

app = typer.Typer(
    name="mathagent",
    help=(
        "Math answers you can trust because Lean checked them.\n\n"
        "Start with [bold]mathagent doctor[/bold] to see what this machine can do. Then "
        '[bold]mathagent solve "What is 2+3?"[/bold] for an answer, or '
        "[bold]mathagent verify FILE.lean[/bold] / [bold]--input TASKS.jsonl[/bold] to check Lean proofs "
        "(examples/ in the repository has some to try)."
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command(
    "verify",
    help=verify_cmd.HELP,
    epilog=verify_cmd.EPILOG,
    no_args_is_help=False,
    cls=RayCommand,
)(verify_cmd.verify)
app.command("solve", help=solve_cmd.HELP, epilog=solve_cmd.EPILOG)(solve_cmd.solve_command)
app.command("chat", help=chat.HELP)(chat.chat)
app.command("batch", help=batch_cmd.HELP, epilog=batch_cmd.EPILOG, cls=RayCommand)(batch_cmd.batch)
app.command("serve", help=serve_cmd.HELP, epilog=serve_cmd.EPILOG)(serve_cmd.serve)
app.add_typer(eval_cmd.app, name="eval")
app.command("doctor", help=doctor_cmd.HELP, cls=RayCommand)(doctor_cmd.doctor)
app.add_typer(lean_cmd.app, name="lean")
app.add_typer(model_cmd.app, name="model")


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks for errors."),
    verbose: bool = typer.Option(
        False,
        "--verbose",
        "-v",
        help="Show the model engine's own logs (vLLM, torch) on the terminal; otherwise they go to "
        "logs/engine.log in the cache folder.",
    ),
) -> None:
    state.debug = debug
    if verbose:
        from mathagent.engines import enginelog  # only here: `verify` and `serve` never load the engines

        os.environ[enginelog.VERBOSE_ENV] = "1"  # read where engines start, in this process and its children


def main() -> None:
    """Console-script entry point: run the app, turning known errors into messages."""
    help_format.tidy()
    # What the imports made lives as long as the process: kept out of every garbage
    # collection, including the last one at exit, which took 60 ms of each command.
    gc.freeze()
    try:
        app()
    except MathAgentError as exc:
        if state.debug:
            raise
        err = SafeConsole(stderr=True)
        # soft_wrap: one message is one line, even piped (rich would break it at 80 columns)
        err.print(f"[bold red]error:[/bold red] {escape(exc.message)}", highlight=False, soft_wrap=True)
        if exc.hint:
            err.print(f"[dim]fix:[/dim] {escape(exc.hint)}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        SafeConsole(stderr=True).print("[yellow]interrupted[/yellow]")
        sys.exit(130)
