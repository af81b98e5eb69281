"""What every command shares: settings from flags, and a flag for tracebacks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from mathagent.config import Settings, load_settings
from mathagent.errors import InputError
from mathagent.project import default_header, find_project
from mathagent.verify.verifier import VerifyOptions


@dataclass
class _State:
    debug: bool = False


state = _State()


def verify_options(
    settings: Settings, header: str, *, default_pool: str, extra_axioms: tuple[str, ...] = ()
) -> VerifyOptions:
    """The verifier's options from settings (flags, env and config already merged)."""
    return VerifyOptions(
        workers=settings.workers,
        timeout_s=settings.timeout_s,
        memory_mb=settings.memory_mb,
        max_bytes=settings.max_bytes,
        allow_axioms=(*settings.allow_axioms, *extra_axioms),
        allow_native=settings.allow_native,
        sandbox=settings.sandbox,
        default_header=header,
        cache_path=settings.cache_dir / "verdicts.sqlite3" if settings.use_cache else None,
        pool=settings.pool or default_pool,
    )


def settings_from_flags(
    lean: Path | None = None, project: Path | None = None, **overrides: object
) -> tuple[Settings, Path | None]:
    """Config files and env, then flags on top; and the Lake project to use."""
    settings = load_settings()
    if lean is not None:
        settings = settings.with_overrides(lean=lean.expanduser(), lean_origin="--lean")
    settings = settings.with_overrides(project=project, **overrides)
    return settings, find_project(Path.cwd(), settings.project)


# Options several commands share, declared once.
EngineOpt = Annotated[str | None, typer.Option("--engine", help="auto | vllm | openai", show_default=False)]
ModelOpt = Annotated[
    str | None,
    typer.Option("--model", "-m", help="Model: hub id, short InternLM2-Math name or local folder.", show_default=False),
]
BaseUrlOpt = Annotated[
    str | None,
    typer.Option("--base-url", help="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1", show_default=False),
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
        "--workers", "-j", min=1, help="Lean processes at once.  \\[default: number of cores]", show_default=False
    ),
]


def read_header(header_file: Path | None, project: Path | None) -> str:
    """The header text from `--header-file`, else the Lake project's default."""
    if header_file is None:
        return default_header(project)
    try:
        return header_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read header file {header_file}: {exc}") from exc


def check_pool(pool: str | None) -> None:
    if pool is not None and pool not in ("cold", "warm"):
        raise typer.BadParameter("must be cold or warm", param_hint="--pool")


def check_engine(engine: str | None) -> None:
    if engine is not None and engine not in ("auto", "vllm", "openai"):
        raise typer.BadParameter("must be auto, vllm or openai", param_hint="--engine")
