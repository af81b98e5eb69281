"""Settings: one object built at the CLI edge from flags, env and config files.

Precedence, highest first: command-line flags, environment variables
(`MATHAGENT_*`), `./mathagent.toml`, then `mathagent.toml` in the user config
folder. Nothing is read at import time.

Every value is checked in one place, the fields of `Settings` (type, range,
and the words an error uses for them). Each source is checked on its own, so
that the one-line `ConfigError` names where the bad value came from: the file
and key, the environment variable, or the setting a flag sets.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

import platformdirs
from pydantic import AfterValidator, AliasChoices, BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from mathagent.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

CONFIG_NAME = "mathagent.toml"
EngineKind = Literal["auto", "torch", "vllm", "openai"]
ENGINES: tuple[str, ...] = get_args(EngineKind)
MAX_WORKERS = 1024  # each worker is a Lean process; more than this is a typo, not a machine
MAX_SECONDS = 86400.0  # one day: longer is a typo (and a negative or zero limit fails every check)
MIN_MEMORY_MB = 256  # a prelude-only Lean needs about 100 MB to start; Mathlib needs gigabytes

# A dotted Lean name as `#print axioms` writes it: parts are identifiers (not starting with a digit) or «quoted»
_LEAN_NAME = re.compile(r"(?:«[^»]+»|[^\W\d][\w'!?]*)(?:\.(?:«[^»]+»|[^\W\d][\w'!?]*|\d+))*")


def _lean_name(value: str) -> str:
    if not _LEAN_NAME.fullmatch(value):
        raise ValueError("not a Lean name")
    return value


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in value):
        raise ValueError("not an http(s) URL")
    return value


# What `--ray` and `[cluster] address` take: start a local cluster, join the running one, stay on this
# machine, or a cluster's address (`host:port` of `ray start --head`, or `ray://host:port` of Ray Client).
RAY_WORDS = ("local", "auto", "off")
_RAY_ADDRESS = re.compile(r"(?:ray://)?[\w.\-]+:\d{1,5}|(?:ray://)?\[[0-9a-fA-F:]+\]:\d{1,5}")


def _ray_address(value: str) -> str:
    if value not in RAY_WORDS and not _RAY_ADDRESS.fullmatch(value):
        raise ValueError("not a Ray address")
    return value


def _seconds(default: float) -> Any:
    # typed Any, like Field itself, so that type checkers still see a default on the field
    return Field(
        default=default, gt=0, le=MAX_SECONDS, description=f"a number of seconds above 0 and at most {MAX_SECONDS:g}"
    )


_COUNT = "an integer >= 1"
_FLAG = "true or false"


class Settings(BaseModel):
    """Everything a command needs to know about where things are and limits.

    Immutable; `with_overrides` returns a checked copy. The `description` of a
    field is the allowed range as error messages state it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    lean: Path | None = Field(default=None, description="a path")  # explicit Lean binary
    lean_origin: str = Field(default="", description="a string")  # where `lean` came from, for messages
    # the Lake project to take `lake env` and the header from
    project: Path | None = Field(default=None, description="a path")
    workers: int = Field(
        default_factory=lambda: min(usable_cores(), MAX_WORKERS),
        ge=1,
        le=MAX_WORKERS,
        description=f"an integer from 1 to {MAX_WORKERS}",
    )
    timeout_s: float = _seconds(60.0)
    memory_mb: int = Field(
        default=8192, ge=MIN_MEMORY_MB, description=f"a whole number of megabytes >= {MIN_MEMORY_MB}"
    )
    max_bytes: int = Field(default=1024 * 1024, ge=1, description=_COUNT)
    allow_axioms: tuple[Annotated[str, AfterValidator(_lean_name)], ...] = Field(
        default=(), description='a list of Lean names, e.g. ["Classical.choice"]'
    )
    allow_native: bool = Field(default=False, description=_FLAG)
    use_cache: bool = Field(default=True, description=_FLAG)
    sandbox: Literal["auto", "bwrap", "none"] = Field(default="auto", description="one of auto, bwrap, none")
    # None: each command's default (verify cold, the others warm)
    pool: Literal["cold", "warm"] | None = Field(default=None, description="one of cold, warm")
    cache_dir: Path = Field(
        default_factory=lambda: Path(platformdirs.user_cache_dir("mathagent")), description="a path"
    )
    config_files: tuple[Path, ...] = Field(default=(), description="a list of paths")
    # the model
    engine: EngineKind = Field(default="auto", description=f"one of {', '.join(ENGINES)}")
    # hub id, short InternLM2-Math name, or local folder
    model: str | None = Field(default=None, min_length=1, description="a model name or folder (a non-empty string)")
    base_url: Annotated[str, AfterValidator(_http_url)] | None = Field(
        default=None, description="an http(s) URL, e.g. http://127.0.0.1:8000/v1"
    )
    api_key: str | None = Field(default=None, description="a string")
    tensor_parallel_size: int = Field(default=1, ge=1, description=_COUNT)
    max_model_len: int | None = Field(default=None, ge=1, description=_COUNT)
    engine_timeout_s: float = _seconds(300.0)
    concurrency: int = Field(default=16, ge=1, description=_COUNT)
    # the checking service (`mathagent serve`); its Lean workers, pool and limits per check are the verify ones
    serve_host: str = Field(default="127.0.0.1", min_length=1, description="a host name or IP address")
    serve_port: int = Field(default=8000, ge=0, le=65535, description="a port number from 0 to 65535")
    # never MATHAGENT_API_KEY: that is the model server's key, and would be handed to every client
    serve_api_key: str | None = Field(default=None, min_length=1, description="a non-empty string")
    serve_tasks: Path | None = Field(default=None, description="a path")  # statements kimina snippet ids name
    serve_max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1, description=_COUNT)
    serve_max_snippets: int = Field(default=256, ge=1, description=_COUNT)
    serve_max_timeout_s: float = _seconds(300.0)
    serve_max_queue: int = Field(default=512, ge=1, description=_COUNT)
    serve_grace_s: float = _seconds(30.0)
    # requests still arriving (slowloris): their deadlines, and how many may arrive at once
    serve_header_timeout_s: float = _seconds(10.0)
    serve_body_timeout_s: float = _seconds(30.0)
    serve_max_receiving: int = Field(default=256, ge=1, description=_COUNT)

    # a Ray cluster ([cluster]; see mathagent.cluster): None or "off" keeps every command on this machine
    cluster_address: Annotated[str, AfterValidator(_ray_address)] | None = Field(
        default=None, description="local, auto, off, or a cluster address such as 10.0.0.1:6379 or ray://10.0.0.1:10001"
    )
    # Lean workers per node (None: the node's CPUs)
    cluster_workers: int | None = Field(
        default=None, ge=1, le=MAX_WORKERS, description=f"an integer from 1 to {MAX_WORKERS}"
    )
    # in-process engine replicas (None: one per GPU in the cluster; 0: generate in the driver)
    cluster_engine_replicas: int | None = Field(default=None, ge=0, description="an integer >= 0")
    # OpenAI-compatible endpoints, one engine replica each
    cluster_base_urls: tuple[Annotated[str, AfterValidator(_http_url)], ...] = Field(
        default=(), description='a list of http(s) URLs, e.g. ["http://10.0.0.2:8000/v1"]'
    )

    def with_overrides(self, **changes: Any) -> Settings:
        """A checked copy with the given fields replaced; `None` values are ignored."""
        given = {k: v for k, v in changes.items() if v is not None}
        return _checked(self, given, where="", name=lambda attr: attr, strict=False)


def allowed(field: str, value: object) -> str | None:
    """None if `value` may go in Settings field `field`, else its allowed range in words (for checking flags)."""
    try:
        Settings().with_overrides(**{field: value})
    except ConfigError:
        return Settings.model_fields[field].description
    return None


def usable_cores() -> int:
    """Cores this process may run on (respects CPU affinity, unlike os.cpu_count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def user_config_dir() -> Path:
    return Path(platformdirs.user_config_dir("mathagent"))


def load_settings(cwd: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Settings from config files and environment (flags are applied by the caller)."""
    cwd = cwd or Path.cwd()
    env = os.environ if env is None else env
    settings = Settings()
    files = [p for p in (user_config_dir() / CONFIG_NAME, cwd / CONFIG_NAME) if p.is_file()]
    for path in files:  # later files win: the working directory beats the user folder
        settings = _apply_file(settings, path)
    settings = settings.with_overrides(config_files=tuple(files))
    return _apply_env(settings, env)


# ------------------------------------------------------------------ mathagent.toml

# Each table of mathagent.toml: its keys and the Settings field each one sets.
# A new table ([serve], [cluster]) is one entry here plus its fields on Settings.
FILE_TABLES: dict[str, dict[str, str]] = {
    "lean": {"path": "lean", "project": "project"},
    "verify": {
        "workers": "workers",
        "timeout": "timeout_s",
        "memory_mb": "memory_mb",
        "max_bytes": "max_bytes",
        "allow_axioms": "allow_axioms",
        "allow_native": "allow_native",
        "cache": "use_cache",
        "sandbox": "sandbox",
        "pool": "pool",
    },
    "engine": {
        "kind": "engine",
        "model": "model",
        "base_url": "base_url",
        "api_key": "api_key",
        "tensor_parallel_size": "tensor_parallel_size",
        "max_model_len": "max_model_len",
        "timeout": "engine_timeout_s",
        "concurrency": "concurrency",
    },
    "serve": {
        "host": "serve_host",
        "port": "serve_port",
        "api_key": "serve_api_key",
        "tasks": "serve_tasks",
        "max_body_bytes": "serve_max_body_bytes",
        "max_snippets": "serve_max_snippets",
        "max_timeout": "serve_max_timeout_s",
        "max_queue": "serve_max_queue",
        "grace": "serve_grace_s",
        "header_timeout": "serve_header_timeout_s",
        "body_timeout": "serve_body_timeout_s",
        "max_receiving": "serve_max_receiving",
    },
    "cluster": {
        "address": "cluster_address",
        "workers_per_node": "cluster_workers",
        "engine_replicas": "cluster_engine_replicas",
        "base_urls": "cluster_base_urls",
    },
}
_PATHS = ("lean", "project", "serve_tasks")  # fields that are paths: relative ones are relative to the file's folder


def _apply_file(settings: Settings, path: Path) -> Settings:
    where = f"config file {path}: "
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    changes: dict[str, Any] = {}
    keys: dict[str, str] = {}  # field -> "table.key", for messages
    written: dict[str, object] = {}  # field -> the value as the file has it, for messages
    for table, values in data.items():
        if table not in FILE_TABLES:
            raise ConfigError(where + _unknown_table(table, values))
        if not isinstance(values, dict):
            raise ConfigError(f"{where}{table} must be a table ([{table}]), not a value")
        known = FILE_TABLES[table]
        for key, value in values.items():
            if key not in known:
                raise ConfigError(where + _unknown_key(table, key))
            attr = known[key]
            keys[attr] = f"{table}.{key}"
            written[attr] = value
            changes[attr] = _from_toml(attr, value, path.parent)
    if "lean" in changes:
        changes["lean_origin"] = f"config file {path}"
    # strict: TOML has types, so "5" for a number or 1 for true is a mistake, not a spelling
    return _checked(settings, changes, where=where, name=lambda attr: keys.get(attr, attr), strict=True, shown=written)


def _from_toml(attr: str, value: object, base: Path) -> object:
    """A TOML value in the Python type its field takes; anything else is left for the check to reject."""
    if attr in _PATHS and isinstance(value, str) and value:
        path = Path(value).expanduser()
        return path if path.is_absolute() else base / path
    if isinstance(value, list):
        return tuple(value)
    return value


def _unknown_table(table: str, value: object) -> str:
    tables = ", ".join(f"[{t}]" for t in FILE_TABLES)
    if not isinstance(value, dict):
        return f"unknown key {table} (settings go in the tables {tables})"
    return f"unknown table [{table}]{_did_you_mean(table, FILE_TABLES, '[{}]')} (known tables: {tables})"


def _unknown_key(table: str, key: str) -> str:
    known = FILE_TABLES[table]
    return (
        f"unknown key {table}.{key}{_did_you_mean(key, known, table + '.{}')} "
        f"(known keys in [{table}]: {', '.join(known)})"
    )


def _did_you_mean(word: str, choices: Mapping[str, object], form: str) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean {form.format(close[0])}?" if close else ""


# ------------------------------------------------------------------ environment


class _Environment(BaseSettings):
    """The `MATHAGENT_*` variables as text: pydantic-settings finds them, `Settings` checks them."""

    model_config = SettingsConfigDict(env_prefix="MATHAGENT_", extra="ignore")

    lean: str | None = None
    project: str | None = None
    cache_dir: str | None = None
    workers: str | None = None
    timeout_s: str | None = Field(default=None, validation_alias="MATHAGENT_TIMEOUT")
    memory_mb: str | None = None
    sandbox: str | None = None
    engine: str | None = None
    model: str | None = None
    base_url: str | None = None
    api_key: str | None = Field(default=None, validation_alias=AliasChoices("MATHAGENT_API_KEY", "OPENAI_API_KEY"))
    serve_api_key: str | None = None  # MATHAGENT_SERVE_API_KEY
    cluster_address: str | None = Field(default=None, validation_alias="MATHAGENT_RAY")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # only what `_read_env` passes in: `load_settings(env=...)` must not see os.environ
        return (init_settings,)


class _MappingEnvSource(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping instead of os.environ."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # case-insensitive like the default source; an empty variable counts as unset
        return {k.lower(): v for k, v in self._environ.items() if v}


def _env_name(attr: str) -> str:
    alias = _Environment.model_fields[attr].validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return alias if isinstance(alias, str) else f"MATHAGENT_{attr.upper()}"


def _apply_env(settings: Settings, env: Mapping[str, str]) -> Settings:
    found = _Environment(**_MappingEnvSource(_Environment, env)())
    changes: dict[str, Any] = found.model_dump(exclude_none=True)
    for attr in ("lean", "project", "cache_dir"):
        if attr in changes:
            changes[attr] = Path(changes[attr]).expanduser()
    if "lean" in changes:
        changes["lean_origin"] = "MATHAGENT_LEAN"
    # lax: environment values are text, so "4" is the number 4
    return _checked(settings, changes, where="", name=_env_name, strict=False)


# ------------------------------------------------------------------ checking


def _checked(
    settings: Settings,
    changes: dict[str, Any],
    *,
    where: str,
    name: Callable[[str], str],
    strict: bool,
    shown: Mapping[str, object] | None = None,
) -> Settings:
    """`settings` with `changes`, all fields checked; a bad change is a one-line ConfigError naming its source.

    `shown` holds values as the user wrote them, where that differs from `changes`.
    """
    try:
        return Settings.model_validate({**dict(settings), **changes}, strict=strict)
    except ValidationError as exc:
        raise ConfigError(where + _one_line(exc, {**changes, **(shown or {})}, name)) from exc


def _one_line(exc: ValidationError, changes: Mapping[str, Any], name: Callable[[str], str]) -> str:
    """pydantic's report (many lines, its own words) as one line in ours, about the first problem."""
    error = exc.errors()[0]
    attr = str(error["loc"][0]) if error["loc"] else ""
    if error["type"] == "extra_forbidden":
        return f"unknown setting {attr}"
    rule = Settings.model_fields[attr].description if attr in Settings.model_fields else error["msg"]
    return f"{name(attr)} must be {rule} (got {changes.get(attr, error['input'])!r})"
