"""`mathagent model ...`: the model mathagent would use, and the embedded one."""

from __future__ import annotations

import json

import typer
from rich.markup import escape

from mathagent.cli.common import settings_from_flags
from mathagent.cli.terminal import SafeConsole
from mathagent.errors import MathAgentError

app = typer.Typer(help="Show which model mathagent uses; prepare the embedded CPU model.", no_args_is_help=True)


@app.command("pull")
def pull() -> None:
    """Download and convert the embedded demonstration model (SmolLM2-135M-Instruct) now,
    so the first `mathagent solve` on a CPU does not wait for it."""
    from mathagent.engines import embedded, select  # here, not at the top: every command loads this module

    settings, _ = settings_from_flags()
    console = SafeConsole(stderr=True)
    if embedded.is_ready(settings.cache_dir):
        folder = embedded.model_dir(settings.cache_dir)
        console.print(
            f"{embedded.MODEL_NAME} is already there, in {escape(str(folder))}: nothing to download", highlight=False
        )
    else:
        folder = embedded.ensure_model(settings.cache_dir, lambda m: console.print(f"[dim]{escape(m)}[/dim]"))
        console.print(f"[green]ready:[/green] {embedded.MODEL_NAME}, in {escape(str(folder))}", highlight=False)
    try:
        choice = select.choose(settings.engine)
    except MathAgentError:
        choice = None
    if choice is not None and not choice.embedded:
        # `pull` prepares the embedded model only; say so when solve would use another one
        console.print(
            f"[dim]note: solve here uses {escape(choice.describe())} ({escape(choice.why)}), not the embedded "
            "model; vLLM downloads a hub model itself on first use, into the Hugging Face cache[/dim]",
            highlight=False,
        )
    typer.echo(str(folder))


@app.command("show")
def show(json_out: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """Which engine and model `solve` would use here, and why."""
    from mathagent.engines import embedded, select

    settings, _ = settings_from_flags()
    choice = select.choose(settings.engine)
    info = {
        "engine": choice.kind,
        "model": choice.model,
        "base_url": choice.base_url,
        "device": choice.device,
        "embedded": choice.embedded,
        "why": choice.why,
        "embedded_model_ready": embedded.is_ready(settings.cache_dir),
    }
    if json_out:
        typer.echo(json.dumps(info, indent=2))
        return
    SafeConsole().print(f"{escape(choice.describe())}\n[dim]because {escape(choice.why)}[/dim]")
