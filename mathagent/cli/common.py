"""What every command shares: settings from flags, and a flag for tracebacks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperCommand

from mathagent.config import ENGINES, RAY_WORDS, Settings, allowed, load_settings
from mathagent.errors import InputError
from mathagent.project import default_header, find_project
from mathagent.verify.verifier import VerifyOptions
from mathagent.vocabulary import Pool

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
        session_backend=verify.session_backend,
        repl=verify.repl,
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


def need_jsonl(path: Path, *, kind: str, hint: str) -> None:
    """`need_file`, and an InputError for a `.lean` file (read as JSONL, each of its
    lines would be a row of invalid JSON)."""
    need_file(path, kind=kind, hint=hint)
    if path.suffix.lower() == ".lean":
        raise InputError(
            f"{path} looks like a Lean file, not {kind}",
            hint=f"{hint}; to check a Lean file whole: mathagent verify {path}",
        )


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
