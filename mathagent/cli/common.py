"""What every command shares: settings from flags, and a flag for tracebacks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperCommand

from mathagent.config import ENGINES, MAX_WORKERS, RAY_WORDS, Settings, allowed, load_settings, usable_cores
from mathagent.errors import InputError
from mathagent.project import default_header, find_project
from mathagent.verify.verifier import VerifyOptions
from mathagent.vocabulary import Pool, StrategyKind

if TYPE_CHECKING:  # the pipeline is imported only by the commands that solve problems
    from mathagent.agent.budget import Budget
    from mathagent.agent.records import Problem, ProblemError
    from mathagent.pipeline import Resume, Run, Runtime


@dataclass
class _State:
    debug: bool = False


state = _State()


def verify_options(
    settings: Settings, header: str, *, default_pool: str, extra_axioms: tuple[str, ...] = ()
) -> VerifyOptions:
    """The verifier's options from settings (flags, env and config already merged)."""
    verify = settings.verify
    return VerifyOptions(
        workers=verify.workers,
        timeout_s=verify.timeout,
        memory_mb=verify.memory_mb,
        max_bytes=verify.max_bytes,
        allow_axioms=(*verify.allow_axioms, *extra_axioms),
        allow_native=verify.allow_native,
        sandbox=verify.sandbox,
        default_header=header,
        cache_path=settings.cache_dir / "verdicts.sqlite3" if verify.cache else None,
        pool=verify.pool or default_pool,
    )


def settings_from_flags(
    lean: Path | None = None, project: Path | None = None, **overrides: Any
) -> tuple[Settings, Path | None]:
    """Config files and env, then flags on top (a dict per table, `None` for a flag not given);
    and the Lake project to use."""
    settings = load_settings()
    if lean is not None:
        settings = settings.with_overrides(lean={"path": lean.expanduser()}, lean_origin="--lean")
    settings = settings.with_overrides(lean={"project": project}, **overrides)
    return settings, find_project(Path.cwd(), settings.lean.project)


def settings_rule(key: str) -> Callable[[Any], Any]:
    """A typer callback holding a flag to the range its setting (`engine.base_url`) allows in files and env too."""

    def check(value: Any) -> Any:
        if value is not None and (rule := allowed(key, value)) is not None:
            raise typer.BadParameter(f"must be {rule} (got {value!r})")
        return value

    return check


# Options several commands share, declared once.
EngineOpt = Annotated[
    str | None,
    typer.Option(
        "--engine",
        help="auto | torch (a small model on the CPU, starts in seconds) | vllm | openai (a server at --base-url)",
        show_default=False,
    ),
]
ModelOpt = Annotated[
    str | None,
    typer.Option("--model", "-m", help="Model: hub id, short InternLM2-Math name or local folder.", show_default=False),
]
BaseUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--base-url",
        help="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1",
        show_default=False,
        callback=settings_rule("engine.base_url"),
    ),
]
ApiKeyOpt = Annotated[
    str | None, typer.Option("--api-key", help="API key for --base-url (also MATHAGENT_API_KEY).", show_default=False)
]
LeanOpt = Annotated[
    Path | None, typer.Option("--lean", help="The Lean binary to use (skips discovery).", show_default=False)
]
ProjectOpt = Annotated[
    Path | None,
    typer.Option("--project", help="Lake project for `lake env` and the default header.", show_default=False),
]
HeaderFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--header-file",
        help="Lean header for problems (or rows) that give none.  \\[default: lean/MathAgent/Header.lean]",
        show_default=False,
    ),
]
RoundsOpt = Annotated[
    int,
    typer.Option(
        "--rounds", min=1, max=64, help="Proof rounds: 1 = no repair; each failure with Lean errors gets a repair."
    ),
]
SamplesOpt = Annotated[
    int, typer.Option("--samples", min=1, max=256, help="Proofs sampled in round 1 (and repairs per later round).")
]
MaxTokensOpt = Annotated[int, typer.Option("--max-tokens", min=16, help="Tokens per generated proof or solution.")]
TimeLimitOpt = Annotated[
    float | None, typer.Option("--time-limit", min=1, help="Seconds per problem (wall clock).", show_default=False)
]
StrategyOpt = Annotated[
    StrategyKind,
    typer.Option(
        "--strategy",
        help="How statements are proved: whole = sample whole proofs and repair them with Lean's errors; "
        "tactic = best-first search over Lean's goal states (InternLM2's tactic prompt); both = whole proofs "
        "first, then the search from the best failed one.",
        case_sensitive=False,
    ),
]
ExpansionsOpt = Annotated[
    int, typer.Option("--expansions", min=1, max=100_000, help="Tactic search: goal states expanded per problem.")
]
CandidatesOpt = Annotated[
    int, typer.Option("--candidates", min=1, max=256, help="Tactic search: tactics the model proposes per state.")
]
PoolOpt = Annotated[
    str | None,
    typer.Option(
        "--pool",
        help="warm: Lean servers keep each header elaborated | cold: a fresh Lean per check.  \\[default: warm]",
        show_default=False,
    ),
]
VerifyPoolOpt = Annotated[
    str | None,
    typer.Option(
        "--pool",
        help="cold: a fresh Lean per check | warm: language servers keep each header elaborated (fast with \
Mathlib).  \\[default: cold]",
        show_default=False,
    ),
]
WorkersOpt = Annotated[
    int | None,
    typer.Option(
        "--workers",
        "-j",
        min=1,
        max=MAX_WORKERS,
        help=f"Lean processes at once.  \\[default: all usable cores ({usable_cores()})]",
        show_default=False,
    ),
]
RayOpt = Annotated[
    str | None,
    typer.Option(
        "--ray",
        metavar="[ADDRESS]",
        help="Run on a Ray cluster: auto (the one `ray start` runs here), HOST:PORT or ray://HOST:PORT, or no value "
        "to start a local one; off: this machine only. Each node checks with as many Lean workers as it has CPUs "
        "(\\[cluster] workers_per_node).  \\[default: \\[cluster] address, else off]",
        show_default=False,
        callback=settings_rule("cluster.address"),
    ),
]


class RayCommand(TyperCommand):
    """A command whose `--ray` may come without a value: then it means `local`.

    Given a word that is no Ray address (`--ray problems.jsonl`), `--ray`
    takes no value and the word stays an argument; `--ray=ADDRESS` is never
    ambiguous."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # a click Context
        return super().parse_args(ctx, bare_ray(args))


def bare_ray(args: list[str]) -> list[str]:
    """`--ray` with no address after it spelled `--ray=local`, as click needs it."""
    out: list[str] = []
    for i, arg in enumerate(args):
        if arg == "--":
            return out + args[i:]
        following = args[i + 1] if i + 1 < len(args) else None
        if arg == "--ray" and (following is None or not _ray_address_like(following)):
            out.append("--ray=local")
        else:
            out.append(arg)
    return out


def _ray_address_like(word: str) -> bool:
    return word in RAY_WORDS or (":" in word and not word.startswith("-"))


def need_file(path: Path, *, kind: str, hint: str, directory_hint: str | None = None) -> None:
    """Raise InputError unless `path` is a file, saying whether it is missing or
    a directory; `kind` names the file expected ("a JSONL file of tasks")."""
    if path.is_file():
        return
    if path.is_dir():
        raise InputError(f"{path} is a directory, not {kind}", hint=directory_hint or hint)
    if path.exists():
        raise InputError(f"{path} is not a regular file, not {kind}", hint=hint)
    raise InputError(f"no such file: {path}", hint=hint)


def read_header(header_file: Path | None, project: Path | None) -> str:
    """The header text from `--header-file`, else the Lake project's default."""
    if header_file is None:
        return default_header(project)
    hint = "--header-file takes a Lean file holding the header, e.g. examples/prelude_header.lean"
    need_file(header_file, kind="a Lean header file", hint=hint)
    try:
        data = header_file.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read header file {header_file}: {exc.strerror or exc}", hint=hint) from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"header file {header_file} is not UTF-8 text (byte {data[exc.start]:#04x} at offset {exc.start})",
            hint=hint,
        ) from exc


def dim_printer(console: Console) -> Callable[[str], None]:
    """A `say` for progress notes: each message dimmed on `console`, printed as given (no markup)."""
    return lambda message: console.print(f"[dim]{escape(message)}[/dim]", highlight=False)


def check_pool(pool: str | None) -> None:
    if pool is not None and pool not in set(Pool):
        raise typer.BadParameter(f"must be {' or '.join(Pool)}", param_hint="--pool")


def check_engine(engine: str | None) -> None:
    if engine is not None and engine not in ENGINES:
        raise typer.BadParameter(f"must be one of {', '.join(ENGINES)} (got {engine!r})", param_hint="--engine")


def solving_runtime(settings: Settings, project: Path | None, header_file: Path | None) -> Runtime:
    """The engine and Lean that solve problems (chat, batch, eval): the header
    from `--header-file` or the project, checked by a warm pool unless set."""
    from mathagent.pipeline import Runtime

    header = read_header(header_file, project)
    options = verify_options(settings, header, default_pool=Pool.WARM)  # the loop checks many proofs per header
    return Runtime.prepare(settings, project, options)


def prepare_solving(
    lean: Path | None,
    project: Path | None,
    header_file: Path | None,
    err: Console,
    *,
    without_lean: str,
    **flags: Any,
) -> tuple[Runtime, str | None]:
    """Batch's and eval's engine and Lean from their flags, and the Ray cluster
    to run on (None: this machine). Warns on `err` when there is no Lean here,
    saying `without_lean` (what that means for the results)."""
    from mathagent.cluster.session import address_of

    settings, lake_project = settings_from_flags(lean, project, **flags)
    rt, cluster = solving_runtime(settings, lake_project, header_file), address_of(settings)
    if cluster is None and rt.toolchain is None:  # on a cluster the nodes' Lean counts; the checker says
        err.print(f"[yellow]warning:[/yellow] {escape(str(rt.toolchain_problem))}; {without_lean}", highlight=False)
    return rt, cluster


def solve_with_progress(
    rt: Runtime,
    budget: Budget,
    items: list[Problem | ProblemError],
    output: Path,
    concurrency: int,
    err: Console,
    *,
    announce: Callable[[Resume, int], str | None],
    interrupted: str,
    cluster: str | None,
) -> Run:
    """`pipeline.solve` behind a progress bar on `err`; `announce` says what the
    output held (None: nothing to say). Ctrl-C prints `interrupted` and exits 130."""
    from mathagent import pipeline
    from mathagent.cli.render import batch_progress

    def say_resumed(resume: Resume, todo: int) -> None:
        message = announce(resume, todo)
        if message:
            err.print(message, highlight=False)

    try:
        return pipeline.solve(
            rt,
            budget,
            items,
            output,
            concurrency=concurrency,
            cluster=cluster,
            announce=say_resumed,
            watch=lambda todo: batch_progress(err, total=todo),
            say=dim_printer(err),
        )
    except KeyboardInterrupt:
        err.print(f"[yellow]interrupted[/yellow]: {interrupted}")
        raise typer.Exit(130) from None
