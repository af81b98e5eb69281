"""The flags several commands share, declared once: single options as `Annotated`
aliases, and groups of options that always travel together as frozen dataclasses
(`EngineFlags`, `LeanFlags`, `SearchFlags`, `ProofFlags`, `SolvingFlags`).

A command takes a group as one parameter (`engine: EngineFlags = EngineFlags()`)
and is decorated with `flag_groups`, which shows typer the group's fields as
ordinary options in that place, in their order, and hands the command the group
built from them. The group given as the parameter's default supplies the
options' defaults.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, get_type_hints

import typer
from rich.console import Console
from rich.markup import escape

from mathagent.cli.common import check_engine, check_pool, settings_from_flags, settings_rule, solving_runtime
from mathagent.config import MAX_WORKERS, Settings, usable_cores
from mathagent.vocabulary import StrategyKind

if TYPE_CHECKING:
    from mathagent.agent.budget import Budget
    from mathagent.pipeline import Runtime


def deferred_option(*names: str, help: str, default: str | None = None, rule: str | None = None, **limits: Any) -> Any:
    """An option that is None unless given, so that settings (or the command) decide;
    `default` is what applies then, for the help to say. `rule`: the setting
    (`verify.timeout`) whose range the value must keep."""
    return typer.Option(
        None,
        *names,
        help=help if default is None else f"{help}  \\[default: {default}]",
        show_default=False,
        callback=None if rule is None else settings_rule(rule),
        **limits,
    )


def setting_option(key: str, help: str, default: str, **limits: Any) -> Any:
    """The option that sets setting `key` for one run, named after it (`serve.max_timeout`:
    --max-timeout) and held to the range the setting allows in files and env."""
    flag = "--" + key.rpartition(".")[2].replace("_", "-")
    return deferred_option(flag, help=help, default=default, rule=key, **limits)


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


@dataclass(frozen=True)
class EngineFlags:
    """--engine, --model, --base-url, --api-key: which model answers."""

    engine: EngineOpt = None
    model: ModelOpt = None
    base_url: BaseUrlOpt = None
    api_key: ApiKeyOpt = None

    def __post_init__(self) -> None:
        # built before the command body runs, so a bad value stays a usage error ahead of any other work
        check_engine(self.engine)

    def overrides(self) -> dict[str, Any]:
        """The `[engine]` settings these flags set (None: not given)."""
        return {"kind": self.engine, "model": self.model, "base_url": self.base_url, "api_key": self.api_key}


@dataclass(frozen=True)
class LeanFlags:
    """--lean, --project, --header-file: the Lean, the Lake project and the header problems are stated under."""

    lean: LeanOpt = None
    project: ProjectOpt = None
    header_file: HeaderFileOpt = None

    def settings(self, **overrides: Any) -> tuple[Settings, Path | None]:
        """`settings_from_flags` with these flags and `overrides` (a dict per table)."""
        return settings_from_flags(self.lean, self.project, **overrides)


@dataclass(frozen=True)
class SearchFlags:
    """--strategy, --expansions, --candidates: how statements are proved."""

    strategy: StrategyOpt = StrategyKind.WHOLE
    expansions: ExpansionsOpt = 64
    candidates: CandidatesOpt = 8

    def budget(self, **limits: Any) -> Budget:
        """The budget with this strategy and the command's own `limits` (rounds, samples, ...)."""
        from mathagent.agent.budget import Budget

        return Budget(strategy=self.strategy, expansions=self.expansions, candidates=self.candidates, **limits)


@dataclass(frozen=True)
class ProofFlags:
    """--max-tokens, --time-limit and the search flags: each problem's limits and how it is proved."""

    max_tokens: MaxTokensOpt = 2048
    time_limit: TimeLimitOpt = None
    search: SearchFlags = SearchFlags()

    def budget(self, **more: Any) -> Budget:
        """The budget with these limits and the command's own `more` (rounds, samples, ...)."""
        return self.search.budget(max_tokens=self.max_tokens, time_limit_s=self.time_limit, **more)


@dataclass(frozen=True)
class SolvingFlags:
    """Batch's and eval's engine, Lean workers, Lean and Ray cluster."""

    engine: EngineFlags = EngineFlags()
    workers: WorkersOpt = None
    pool: PoolOpt = None
    lean: LeanFlags = LeanFlags()
    ray: RayOpt = None

    def __post_init__(self) -> None:
        check_pool(self.pool)

    def runtime(self, err: Console, *, without_lean: str) -> tuple[Runtime, str | None]:
        """The engine and Lean that solve, and the Ray cluster to run on (None:
        this machine). Warns on `err` when there is no Lean here, saying
        `without_lean` (what that means for the results)."""
        from mathagent.cluster.session import address_of

        settings, lake_project = self.lean.settings(
            engine=self.engine.overrides(),
            verify={"workers": self.workers, "pool": self.pool},
            cluster={"address": self.ray},
        )
        rt, cluster = solving_runtime(settings, lake_project, self.lean.header_file), address_of(settings)
        if cluster is None and rt.toolchain is None:  # on a cluster the nodes' Lean counts; the checker says
            err.print(f"[yellow]warning:[/yellow] {escape(str(rt.toolchain_problem))}; {without_lean}", highlight=False)
        return rt, cluster


def _is_group(hint: Any) -> bool:
    return isinstance(hint, type) and is_dataclass(hint)


def _options(group: type, defaults: Any) -> list[inspect.Parameter]:
    """`group`'s fields as command parameters, nested groups flattened, with the defaults `defaults` holds."""
    hints = get_type_hints(group, include_extras=True)
    params: list[inspect.Parameter] = []
    for field in fields(group):
        hint, default = hints[field.name], getattr(defaults, field.name)
        if _is_group(hint):
            params += _options(hint, default)
        else:
            params.append(
                inspect.Parameter(field.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default, annotation=hint)
            )
    return params


def _gather(group: type, given: dict[str, Any]) -> Any:
    """`group` built from its options' values, taken out of `given`."""
    hints = get_type_hints(group, include_extras=True)
    values = {
        f.name: _gather(hints[f.name], given) if _is_group(hints[f.name]) else given.pop(f.name) for f in fields(group)
    }
    return group(**values)


def flag_groups(command: Callable[..., None]) -> Callable[..., None]:
    """`command` as typer should see it: each parameter annotated with a flag group
    stands for the group's options (see the module's docstring)."""
    signature = inspect.signature(command, eval_str=True)
    groups = {name: p.annotation for name, p in signature.parameters.items() if _is_group(p.annotation)}
    params: list[inspect.Parameter] = []
    for p in signature.parameters.values():
        if p.name in groups:
            params += _options(p.annotation, p.annotation() if p.default is p.empty else p.default)
        else:
            params.append(p)

    @functools.wraps(command)
    def run(**given: Any) -> None:
        built = {name: _gather(group, given) for name, group in groups.items()}
        command(**given, **built)

    run.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    return run
