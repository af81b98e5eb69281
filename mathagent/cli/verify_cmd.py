"""`mathagent verify`: check Lean files or a JSONL of tasks."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager, AbstractContextManager, aclosing, contextmanager, nullcontext
from pathlib import Path
from typing import IO

import typer
from rich.console import Console
from rich.markup import escape

from mathagent import interrupts
from mathagent.cli.common import (
    check_pool,
    dim_printer,
    need_file,
    need_jsonl,
    read_header,
    settings_from_flags,
    verify_options,
)
from mathagent.cli.options import (
    HeaderFileOpt,
    LeanOpt,
    ProjectOpt,
    RayOpt,
    VerifyPoolOpt,
    WorkersOpt,
    deferred_option,
    setting_option,
)
from mathagent.cli.render import progress_bar, verdict_table, verify_summary
from mathagent.cli.terminal import SafeConsole
from mathagent.config import MAX_SECONDS, MIN_MEMORY_MB
from mathagent.errors import InputError
from mathagent.verify.checker import Checker
from mathagent.verify.tasks import BadRow, VerifyTask, bad_row_verdict, read_jsonl, read_lean_file
from mathagent.verify.toolchain import LeanToolchain, find_lean
from mathagent.verify.verdict import Verdict
from mathagent.verify.verifier import PRELUDE_HINT, Verifier
from mathagent.vocabulary import Pool, SandboxMode

HELP = """Check Lean proofs and say which are [bold]verified[/bold].

A proof is verified only when Lean compiles it with no error, the theorem is exactly the one asked (same name, \
same statement; for a whole file, every declaration Lean reports), it uses no [italic]sorry[/italic], it \
depends on no axiom beyond the real propext, Quot.sound and Classical.choice (Lean's own, from Init: not \
ones the file or another module declares), it declares none of the constants the kernel computes by name \
(Nat, Nat.add, String, ...), it contains no banned command (axiom, #exit, #eval, macros, set_option \
debug.*, native_decide, ...), and the verifier's own checks, appended after the proof, reported back. \
Lean's output is capped at 32 MiB a check (verdict too_large).

Exit status: 0 all verified, 1 some not, 2 usage or set-up error.
"""

EPILOG = """[bold]Examples[/bold]

  mathagent verify examples/two_plus_two.lean   [dim]# every declaration in the file[/dim]
  mathagent verify -i examples/tasks.jsonl --header-file examples/prelude_header.lean -o runs/results.jsonl
  mathagent verify -i examples/tasks.jsonl --header-file examples/prelude_header.lean --json | jq .verdict
  mathagent verify -i examples/tasks.jsonl -o runs/verdicts.jsonl --ray auto  [dim]# Lean on every Ray node[/dim]

[dim]--input rows: id, header, formal_statement, proof | full_code. A row without a header gets --header-file \
(default: the Lake project's, which needs Mathlib; examples/prelude_header.lean works on any Lean).[/dim]
"""


def verify(
    files: list[Path] = typer.Argument(
        None, help="Lean files to check whole: every declaration in each.", show_default=False
    ),
    input: Path | None = deferred_option(
        "--input", "-i", help="JSONL of tasks (miniF2F / DeepSeek-Prover / Lean-Workbook rows)."
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write each result as a JSON line here as soon as it is final."
    ),
    json_out: bool = typer.Option(
        False, "--json", help="Print one JSON object per input on stdout instead of a table."
    ),
    workers: WorkersOpt = None,
    timeout: float | None = setting_option(
        "verify.timeout", f"Wall-clock limit per check, in seconds, above 0 and at most {MAX_SECONDS:g}.", "60"
    ),
    memory_mb: int | None = deferred_option(
        "--memory-mb", min=MIN_MEMORY_MB, help="Memory cap per check, in MB.", default="8192"
    ),
    max_bytes: int | None = deferred_option(
        "--max-bytes", min=1, help="Reject larger submissions unread (verdict too_large).", default="1048576"
    ),
    allow_axiom: list[str] = typer.Option(
        [],
        "--allow-axiom",
        help="Also accept this axiom (repeatable). Trusts the task header's own declaration of it too.",
    ),
    allow_native: bool = typer.Option(
        False, "--allow-native", help="Allow native_decide (trusts compiled code: axiom Lean.ofReduceBool)."
    ),
    no_cache: bool = typer.Option(False, "--no-cache", help="Run every check even if the same one was done before."),
    pool: VerifyPoolOpt = None,
    sandbox: str | None = deferred_option(
        "--sandbox", help="auto (bwrap if it works) | bwrap (required) | none (rlimits only)."
    ),
    header_file: HeaderFileOpt = None,
    lean: LeanOpt = None,
    project: ProjectOpt = None,
    ray: RayOpt = None,
) -> None:
    if not files and input is None:
        raise typer.BadParameter("give Lean files to check, or --input tasks.jsonl", param_hint="FILES / --input")
    if sandbox is not None and sandbox not in set(SandboxMode):
        *others, last = SandboxMode
        raise typer.BadParameter(f"must be {', '.join(others)} or {last}", param_hint="--sandbox")
    check_pool(pool)
    settings, lake_project = settings_from_flags(
        lean,
        project,
        verify={
            "workers": workers,
            "timeout": timeout,
            "memory_mb": memory_mb,
            "max_bytes": max_bytes,
            "sandbox": sandbox,
            "pool": pool,
            "allow_native": allow_native or None,
            "cache": False if no_cache else None,
        },
        cluster={"address": ray},
    )
    from mathagent.cluster.session import address_of

    cluster = address_of(settings)
    items = _read_inputs(files or [], input)
    header = read_header(header_file, lake_project)
    options = verify_options(settings, header, default_pool=Pool.COLD, extra_axioms=tuple(allow_axiom))
    open_checker: Callable[[], AbstractAsyncContextManager[Checker]]
    joined: AbstractContextManager[None]
    if cluster is None:
        toolchain = find_lean(settings, lake_project)
        open_checker, joined = (lambda: Verifier(toolchain, options)), nullcontext()
    else:  # each node finds its own Lean; this machine needs none
        from mathagent.cluster.checker import RayChecker
        from mathagent.cluster.session import connect

        say = dim_printer(SafeConsole(stderr=True))
        open_checker = lambda: RayChecker(settings, options, project=lake_project, say=say)  # noqa: E731
        joined = connect(cluster)
    console = SafeConsole(stderr=json_out)
    finished: list[Verdict] = []
    with _open_output(output) as sink, joined:
        try:
            toolchain = interrupts.run(_verify_all(open_checker, items, sink, json_out, console, finished))
        except KeyboardInterrupt:
            kept = f"; they are in {output}" if output else ""
            SafeConsole(stderr=True).print(
                f"[yellow]interrupted[/yellow]: {len(finished)} of {len(items)} checks finished{kept}"
            )
            raise typer.Exit(130) from None
    verdicts = finished
    if not json_out:
        console.print(verdict_table(verdicts))
        console.print(verify_summary(verdicts, toolchain))
        if any(PRELUDE_HINT in v.message for v in verdicts):
            # the table shows Lean's first error; the reason behind it is in each verdict's message
            console.print(f"[yellow]note:[/yellow] {escape(PRELUDE_HINT)}", highlight=False)
    raise typer.Exit(0 if verdicts and all(v.verified for v in verdicts) else 1)


def _read_inputs(files: list[Path], jsonl: Path | None) -> list[VerifyTask | BadRow]:
    not_files = [f for f in files if not f.is_file()]
    if not_files:
        first, more = not_files[0], len(not_files) - 1
        others = f" (and {more} more: {'they are' if more > 1 else 'it is'} not a file either)"
        try:
            need_file(
                first,
                kind="a Lean file",
                hint="check the path; FILES are .lean files, a JSONL of tasks goes to --input",
                directory_hint=f"FILES are .lean files; to check every one in it: mathagent verify {first}/*.lean",
            )
        except InputError as exc:
            raise InputError(exc.message + (others if more else ""), hint=exc.hint) from None
    tasks_file = next((f for f in files if f.suffix.lower() in (".jsonl", ".json")), None)
    if tasks_file is not None:
        # Lean would read it as Lean source and answer with a syntax error at line 1
        raise InputError(
            f"{tasks_file} looks like a JSONL file of tasks, not a Lean file",
            hint=f"FILES are .lean files; to check its tasks: mathagent verify -i {tasks_file}",
        )
    input_hint = "--input takes a JSONL file of tasks, one per line (see examples/tasks.jsonl)"
    if jsonl is not None:
        need_jsonl(jsonl, kind="a JSONL file of tasks", hint=input_hint)
    items: list[VerifyTask | BadRow] = [read_lean_file(f) for f in files]
    if jsonl is not None:
        rows = list(read_jsonl(jsonl))
        if not rows:
            raise InputError(f"{jsonl} has no rows: the file is empty", hint=input_hint)
        items.extend(rows)
    return items


@contextmanager
def _open_output(path: Path | None) -> Iterator[IO[str] | None]:
    if path is None:
        yield None
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = path.open("w", encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from exc
    with handle:
        yield handle


async def _verify_all(
    open_checker: Callable[[], AbstractAsyncContextManager[Checker]],
    items: list[VerifyTask | BadRow],
    sink: IO[str] | None,
    json_out: bool,
    console: Console,
    finished: list[Verdict],
) -> LeanToolchain:
    """Check every item; append each verdict to `finished` (input order at the end).
    The Lean the checks ran on, for the summary."""
    results: list[Verdict | None] = [None] * len(items)

    def publish(index: int, verdict: Verdict) -> None:
        results[index] = verdict
        finished.append(verdict)
        line = verdict.to_json()
        if sink is not None:
            sink.write(line + "\n")
            sink.flush()
        if json_out:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    checks = [(index, item) for index, item in enumerate(items) if isinstance(item, VerifyTask)]
    for index, item in enumerate(items):
        if isinstance(item, BadRow):
            publish(index, bad_row_verdict(item))
    async with open_checker() as verifier:
        with progress_bar(console, total=len(checks), enabled=not json_out) as advance:
            # closed here, not later by the event loop: Ctrl-C cancels every check before the pool closes
            async with aclosing(verifier.verify_many(task for _, task in checks)) as verdicts:
                async for position, verdict in verdicts:
                    publish(checks[position][0], verdict)
                    advance(verdict)
        toolchain = verifier.toolchain
    finished[:] = [v for v in results if v is not None]
    return toolchain
