"""`mathagent serve`: the verifier as an HTTP service, for pipelines that check proofs over the network."""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from mathagent.cli.common import check_pool, read_header, settings_from_flags, verify_options
from mathagent.cli.options import (
    HeaderFileOpt,
    LeanOpt,
    PoolOpt,
    ProjectOpt,
    WorkersOpt,
    deferred_option,
    setting_option,
)
from mathagent.cli.terminal import SafeConsole
from mathagent.config import MAX_SECONDS, Settings
from mathagent.vocabulary import Pool

if TYPE_CHECKING:
    from mathagent.serve import ServeLimits

HELP = """Check Lean proofs over HTTP: mathagent's own API and kimina-lean-server's, on one shared verifier.

Every proof gets the verifier's full check (sorry, axioms, banned commands, the statement), sandboxed, on warm \
Lean servers kept per header. Pipelines that use kimina-lean-server (the [bold]kimina-client[/bold] package, \
POST /api/check) can point at it unchanged. Listens on 127.0.0.1 unless told otherwise; with an API key every \
request must send [bold]Authorization: Bearer KEY[/bold]. API docs at /docs.
"""

EPILOG = """[bold]Examples[/bold]

  mathagent serve --header-file examples/prelude_header.lean
  curl -s localhost:8000/v1/verify -H 'content-type: application/x-ndjson' --data-binary @examples/tasks.jsonl
  MATHAGENT_SERVE_API_KEY=secret mathagent serve --host 0.0.0.0 --workers 16

[dim]Limits (body size, snippets per request, queue, timeout cap, deadlines) are in the \\[serve] table of \
mathagent.toml; GET /v1/health shows the ones in force.[/dim]
"""


def serve(
    host: str | None = deferred_option("--host", help="Address to listen on.", default="127.0.0.1, this machine only"),
    port: int | None = deferred_option("--port", min=0, max=65535, help="Port (0: any free one).", default="8000"),
    workers: WorkersOpt = None,
    pool: PoolOpt = None,
    api_key: str | None = deferred_option(
        "--api-key", help="Require `Authorization: Bearer KEY` on every request (also MATHAGENT_SERVE_API_KEY)."
    ),
    timeout: float | None = setting_option(
        "verify.timeout", f"Seconds per check when a request names none, above 0 and at most {MAX_SECONDS:g}.", "60"
    ),
    max_timeout: float | None = setting_option(
        "serve.max_timeout", "The most seconds per check a request may ask for.", "300"
    ),
    grace: float | None = setting_option(
        "serve.grace", "On SIGTERM or Ctrl-C, seconds to let running checks finish before cancelling them.", "30"
    ),
    header_timeout: float | None = setting_option(
        "serve.header_timeout",
        "Seconds a request may take to send its headers (from its first byte); then 408 and the connection is closed.",
        "10",
    ),
    body_timeout: float | None = setting_option(
        "serve.body_timeout", "Seconds a request may take to send its body, after its headers; then 408.", "30"
    ),
    max_receiving: int | None = deferred_option(
        "--max-receiving",
        min=1,
        help="Requests still arriving at once; at the cap the slowest makes room (408), or a newcomer gets 503.",
        default="256",
    ),
    tasks: Path | None = deferred_option(
        "--tasks",
        help="JSONL of tasks (id, formal_statement, header): a kimina snippet with id ID or ID#k must prove task "
        "ID's statement, not just any theorem.",
    ),
    no_cache: bool = typer.Option(False, "--no-cache", help="Run every check even if the same one was done before."),
    header_file: HeaderFileOpt = None,
    lean: LeanOpt = None,
    project: ProjectOpt = None,
) -> None:
    # imported here: FastAPI and uvicorn cost every other command nothing
    from mathagent.serve import CheckService, Listen, ServiceConfig, Statements, run
    from mathagent.verify.toolchain import find_lean

    check_pool(pool)
    settings, lake_project = settings_from_flags(
        lean,
        project,
        verify={"workers": workers, "pool": pool, "timeout": timeout, "cache": False if no_cache else None},
        serve={
            "host": host,
            "port": port,
            "api_key": api_key,
            "max_timeout": max_timeout,
            "tasks": tasks,
            "grace": grace,
            "header_timeout": header_timeout,
            "body_timeout": body_timeout,
            "max_receiving": max_receiving,
        },
    )
    header = read_header(header_file, lake_project)
    toolchain = find_lean(settings, lake_project)
    serve = settings.serve
    statements = Statements.load(serve.tasks) if serve.tasks is not None else None
    limits = _limits(settings)
    # the verifier's own limit is the cap: a request's timeout may go up to it (it also sets the CPU backstop)
    options = verify_options(
        settings.with_overrides(verify={"timeout": limits.max_timeout_s}), header, default_pool=Pool.WARM
    )
    service = CheckService(ServiceConfig(toolchain, options, limits, statements))
    listen = Listen(serve.host, serve.port, serve.grace, serve.api_key)
    console = SafeConsole(stderr=True)
    _log_to_stderr()

    def ready(url: str) -> None:
        library = service.library()
        key = "API key required" if listen.api_key else "no API key"
        typer.echo(
            f"mathagent serve: listening on {url} (Lean {toolchain.version}, {library}; {options.pool} pool, "
            f"{options.workers} workers; {key}; docs at {url}/docs)",
            err=False,
        )
        if statements is not None:
            typer.echo(f"mathagent serve: {len(statements)} tasks from {statements.source}")

    if not listen.api_key and not _loopback(listen.host):
        console.print(
            f"[yellow]warning:[/yellow] listening on {escape(listen.host)} without an API key: anyone who can "
            "reach this port can use this machine's Lean (set --api-key or MATHAGENT_SERVE_API_KEY)",
            highlight=False,
            soft_wrap=True,
        )
    run(service, listen, ready)
    console.print("mathagent serve: stopped", style="dim")


def _limits(settings: Settings) -> ServeLimits:
    from mathagent.serve import ServeLimits

    serve = settings.serve
    return ServeLimits(
        max_body_bytes=serve.max_body_bytes,
        max_snippets=serve.max_snippets,
        max_code_bytes=settings.verify.max_bytes,
        default_timeout_s=min(settings.verify.timeout, serve.max_timeout),
        max_timeout_s=serve.max_timeout,
        max_queue=serve.max_queue,
        header_timeout_s=serve.header_timeout,
        body_timeout_s=serve.body_timeout,
        max_receiving=serve.max_receiving,
    )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _log_to_stderr() -> None:
    """The service's own log lines (shutdown, verifier failures with their tracebacks) on stderr."""
    log = logging.getLogger("mathagent.serve")
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("mathagent serve: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
