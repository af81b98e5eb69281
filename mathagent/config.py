"""Settings: one object built at the CLI edge from flags, env and config files.

Precedence, highest first: command-line flags, environment variables
(`MATHAGENT_*`), `./mathagent.toml`, then `mathagent.toml` in the user config
folder. Nothing is read at import time.

`Settings` holds one model per table of mathagent.toml (`[lean]`, `[verify]`,
`[engine]`, `[serve]`, `[cluster]`), whose fields are the table's keys: a
file maps onto it as it is written. A field read from the environment names
its variables with `Env`. Every value is checked in one place, those fields
(type, range, and the words an error uses for them); each source is checked
on its own, so that the one-line `ConfigError` names where the bad value
came from: the file and key, the environment variable, or the setting a flag
sets.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, get_args
from urllib.parse import urlsplit

import platformdirs
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from mathagent.errors import ConfigError
from mathagent.verify.toolchain import LeanSearch
from mathagent.vocabulary import EngineKindName, PoolName, SandboxModeName, SessionBackendName

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

CONFIG_NAME = "mathagent.toml"
ENGINES: tuple[str, ...] = get_args(EngineKindName)
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


class Env:
    """Field metadata: the environment variables a setting is read from, the first one set wins."""

    def __init__(self, *names: str) -> None:
        self.names = names


def _seconds(default: float) -> Any:
    # typed Any, like Field itself, so that type checkers still see a default on the field
    return Field(
        default=default, gt=0, le=MAX_SECONDS, description=f"a number of seconds above 0 and at most {MAX_SECONDS:g}"
    )


_COUNT = "an integer >= 1"
_FLAG = "true or false"
_PATH = "a path"


class _Table(BaseModel):
    """One table of mathagent.toml: its fields are the table's keys, in the order messages list them."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class LeanSettings(_Table):
    """`[lean]`: which Lean to run, and the Lake project to take `lake env` and the header from."""

    path: Annotated[Path | None, Env("MATHAGENT_LEAN")] = Field(default=None, description=_PATH)
    project: Annotated[Path | None, Env("MATHAGENT_PROJECT")] = Field(default=None, description=_PATH)


class VerifySettings(_Table):
    """`[verify]`: Lean workers, limits per check, the axiom policy, the cache, sandbox and pool."""

    workers: Annotated[int, Env("MATHAGENT_WORKERS")] = Field(
        default_factory=lambda: min(usable_cores(), MAX_WORKERS),
        ge=1,
        le=MAX_WORKERS,
        description=f"an integer from 1 to {MAX_WORKERS}",
    )
    timeout: Annotated[float, Env("MATHAGENT_TIMEOUT")] = _seconds(60.0)
    memory_mb: Annotated[int, Env("MATHAGENT_MEMORY_MB")] = Field(
        default=8192, ge=MIN_MEMORY_MB, description=f"a whole number of megabytes >= {MIN_MEMORY_MB}"
    )
    max_bytes: int = Field(default=1024 * 1024, ge=1, description=_COUNT)
    allow_axioms: tuple[Annotated[str, AfterValidator(_lean_name)], ...] = Field(
        default=(), description='a list of Lean names, e.g. ["Classical.choice"]'
    )
    allow_native: bool = Field(default=False, description=_FLAG)
    cache: bool = Field(default=True, description=_FLAG)  # remember verdicts in the cache folder
    sandbox: Annotated[SandboxModeName, Env("MATHAGENT_SANDBOX")] = Field(
        default="auto", description="one of auto, bwrap, none"
    )
    # None: each command's default (verify cold, the others warm)
    pool: PoolName | None = Field(default=None, description="one of cold, warm")
    # what runs a tactic search's proof sessions: Lean's language server, or the Lean REPL through LeanInteract
    # (the `interact` extra; see docs/search.md), and that REPL's executable (None: LeanInteract's cache)
    session_backend: Annotated[SessionBackendName, Env("MATHAGENT_SESSION_BACKEND")] = Field(
        default="server", description="one of server, leaninteract"
    )
    repl: Annotated[Path | None, Env("MATHAGENT_REPL")] = Field(default=None, description=_PATH)


class EngineSettings(_Table):
    """`[engine]`: the model, and how to reach or load it."""

    kind: Annotated[EngineKindName, Env("MATHAGENT_ENGINE")] = Field(
        default="auto", description=f"one of {', '.join(ENGINES)}"
    )
    # hub id, short InternLM2-Math name, or local folder
    model: Annotated[str | None, Env("MATHAGENT_MODEL")] = Field(
        default=None, min_length=1, description="a model name or folder (a non-empty string)"
    )
    base_url: Annotated[Annotated[str, AfterValidator(_http_url)] | None, Env("MATHAGENT_BASE_URL")] = Field(
        default=None, description="an http(s) URL, e.g. http://127.0.0.1:8000/v1"
    )
    api_key: Annotated[str | None, Env("MATHAGENT_API_KEY", "OPENAI_API_KEY")] = Field(
        default=None, description="a string"
    )
    tensor_parallel_size: int = Field(default=1, ge=1, description=_COUNT)
    max_model_len: int | None = Field(default=None, ge=1, description=_COUNT)
    timeout: float = _seconds(300.0)
    concurrency: int = Field(default=16, ge=1, description=_COUNT)


class ServeSettings(_Table):
    """`[serve]`: the checking service (`mathagent serve`); its Lean workers, pool and limits per check are the
    `[verify]` ones."""

    host: str = Field(default="127.0.0.1", min_length=1, description="a host name or IP address")
    port: int = Field(default=8000, ge=0, le=65535, description="a port number from 0 to 65535")
    # never MATHAGENT_API_KEY: that is the model server's key, and would be handed to every client
    api_key: Annotated[str | None, Env("MATHAGENT_SERVE_API_KEY")] = Field(
        default=None, min_length=1, description="a non-empty string"
    )
    tasks: Path | None = Field(default=None, description=_PATH)  # statements kimina snippet ids name
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1, description=_COUNT)
    max_snippets: int = Field(default=256, ge=1, description=_COUNT)
    max_timeout: float = _seconds(300.0)
    max_queue: int = Field(default=512, ge=1, description=_COUNT)
    grace: float = _seconds(30.0)
    # requests still arriving (slowloris): their deadlines, and how many may arrive at once
    header_timeout: float = _seconds(10.0)
    body_timeout: float = _seconds(30.0)
    max_receiving: int = Field(default=256, ge=1, description=_COUNT)


class ClusterSettings(_Table):
    """`[cluster]`: a Ray cluster (see mathagent.cluster); no address, or "off", keeps every command here."""

    address: Annotated[Annotated[str, AfterValidator(_ray_address)] | None, Env("MATHAGENT_RAY")] = Field(
        default=None, description="local, auto, off, or a cluster address such as 10.0.0.1:6379 or ray://10.0.0.1:10001"
    )
    # Lean workers per node (None: the node's CPUs)
    workers_per_node: int | None = Field(
        default=None, ge=1, le=MAX_WORKERS, description=f"an integer from 1 to {MAX_WORKERS}"
    )
    # in-process engine replicas (None: one per GPU in the cluster; 0: generate in the driver)
    engine_replicas: int | None = Field(default=None, ge=0, description="an integer >= 0")
    # OpenAI-compatible endpoints, one engine replica each
    base_urls: tuple[Annotated[str, AfterValidator(_http_url)], ...] = Field(
        default=(), description='a list of http(s) URLs, e.g. ["http://10.0.0.2:8000/v1"]'
    )


class Settings(BaseSettings):
    """Everything a command needs to know about where things are and limits.

    Immutable; `with_overrides` returns a checked copy. The `description` of a
    field is the allowed range as error messages state it. `Settings()` is
    the defaults: `load_settings` adds the config files and the environment.
    """

    model_config = SettingsConfigDict(frozen=True, extra="forbid")

    lean: LeanSettings = Field(default_factory=LeanSettings)
    verify: VerifySettings = Field(default_factory=VerifySettings)
    engine: EngineSettings = Field(default_factory=EngineSettings)
    serve: ServeSettings = Field(default_factory=ServeSettings)
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)
    # not in any table: where probes, verdicts, models and logs are kept
    cache_dir: Annotated[Path, Env("MATHAGENT_CACHE_DIR")] = Field(
        default_factory=lambda: Path(platformdirs.user_cache_dir("mathagent")), description=_PATH
    )
    lean_origin: str = Field(default="", description="a string")  # where `lean.path` came from, for messages
    config_files: tuple[Path, ...] = Field(default=(), description="a list of paths")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # only the values given: `load_settings` layers files and environment, each checked on its own
        return (init_settings,)

    def with_overrides(self, **changes: Any) -> Settings:
        """A checked copy with the given values replaced; a table takes a dict of its keys
        (`verify={"workers": 4}`). `None` values are ignored (a flag not given)."""
        given: dict[str, Any] = {}
        for name, value in changes.items():
            if isinstance(value, Mapping):
                value = {k: v for k, v in value.items() if v is not None}
            if value is not None and value != {}:
                given[name] = value
        return _checked(self, given, where="", name=".".join, strict=False)

    def lean_search(self, project: Path | None) -> LeanSearch:
        """Where to look for Lean: the one these settings name, the Lake project `project`, this cache folder."""
        return LeanSearch(
            cache_dir=self.cache_dir, lean=self.lean.path, lean_origin=self.lean_origin or "--lean", project=project
        )


def _tables() -> dict[str, type[_Table]]:
    """The tables of mathagent.toml, in order: the fields of Settings that are a table model."""
    found: dict[str, type[_Table]] = {}
    for name, field in Settings.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, _Table):
            found[name] = field.annotation
    return found


def _field(loc: tuple[str, ...]) -> FieldInfo | None:
    """The field at `loc` (`("verify", "workers")`, or `("cache_dir",)`); None if there is none."""
    if not loc or loc[0] not in Settings.model_fields:
        return None
    table = _tables().get(loc[0])
    if table is None or len(loc) == 1:
        return Settings.model_fields[loc[0]]
    return table.model_fields.get(loc[1])


def _is_path(field: FieldInfo) -> bool:
    return field.annotation is Path or Path in get_args(field.annotation)


def allowed(key: str, value: object) -> str | None:
    """None if `value` may go in setting `key` ("verify.workers"), else its allowed range in words (for flags)."""
    table, _, name = key.rpartition(".")
    try:
        Settings().with_overrides(**({table: {name: value}} if table else {name: value}))
    except ConfigError:
        field = _field((table, name) if table else (name,))
        return field.description if field is not None and field.description else "a known setting"
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
        source = ConfigFileSource(Settings, path)
        # strict: TOML has types, so "5" for a number or 1 for true is a mistake, not a spelling
        settings = _checked(
            settings, source(), where=f"config file {path}: ", name=".".join, strict=True, shown=source.written
        )
    settings = settings.with_overrides(config_files=tuple(files))
    # lax: environment values are text, so "4" is the number 4
    return _checked(settings, EnvironmentSource(Settings, env)(), where="", name=_env_name, strict=False)


# ------------------------------------------------------------------ mathagent.toml


class ConfigFileSource(PydanticBaseSettingsSource):
    """One mathagent.toml: its tables onto the table models of Settings, relative paths made
    relative to the file's folder. An unknown table or key is a ConfigError that lists the known ones."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        super().__init__(settings_cls)
        self.path = path
        try:
            self.written: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))  # as the file has it
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self.written.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        where = f"config file {self.path}: "
        tables = _tables()
        found: dict[str, Any] = {}
        for table, values in self.written.items():
            if table not in tables:
                raise ConfigError(where + _unknown_table(table, values))
            if not isinstance(values, dict):
                raise ConfigError(f"{where}{table} must be a table ([{table}]), not a value")
            known = tables[table].model_fields
            for key, value in values.items():
                if key not in known:
                    raise ConfigError(where + _unknown_key(table, key))
                found.setdefault(table, {})[key] = self._typed(known[key], value)
        if "path" in found.get("lean", {}):
            found["lean_origin"] = f"config file {self.path}"
        return found

    def _typed(self, field: FieldInfo, value: object) -> object:
        """A TOML value in the Python type its field takes; anything else is left for the check to reject."""
        if _is_path(field) and isinstance(value, str) and value:
            path = Path(value).expanduser()
            return path if path.is_absolute() else self.path.parent / path
        if isinstance(value, list):
            return tuple(value)
        return value


def _unknown_table(table: str, value: object) -> str:
    known = _tables()
    tables = ", ".join(f"[{t}]" for t in known)
    if not isinstance(value, dict):
        return f"unknown key {table} (settings go in the tables {tables})"
    return f"unknown table [{table}]{_did_you_mean(table, known, '[{}]')} (known tables: {tables})"


def _unknown_key(table: str, key: str) -> str:
    known = _tables()[table].model_fields
    return (
        f"unknown key {table}.{key}{_did_you_mean(key, known, table + '.{}')} "
        f"(known keys in [{table}]: {', '.join(known)})"
    )


def _did_you_mean(word: str, choices: Mapping[str, object], form: str) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean {form.format(close[0])}?" if close else ""


# ------------------------------------------------------------------ environment


class EnvironmentSource(PydanticBaseSettingsSource):
    """The variables the fields of Settings name with `Env`, from a given mapping (not
    necessarily os.environ), as text. Names are case-insensitive; an empty variable counts as unset."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self._environ = {name.upper(): value for name, value in environ.items() if value}

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        for name in _env_names(field):
            if name in self._environ:
                return self._environ[name], name, False
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        tables = _tables()
        for name, field in Settings.model_fields.items():
            if name in tables:
                values = {key: v for key, sub in tables[name].model_fields.items() if (v := self._value(sub, key))}
                if values:
                    found[name] = values
            elif value := self._value(field, name):
                found[name] = value
        if found.get("lean", {}).get("path") is not None:
            found["lean_origin"] = self.get_field_value(LeanSettings.model_fields["path"], "path")[1]
        return found

    def _value(self, field: FieldInfo, name: str) -> object:
        value, _, _ = self.get_field_value(field, name)
        return Path(value).expanduser() if value is not None and _is_path(field) else value


def _env_names(field: FieldInfo | None) -> tuple[str, ...]:
    for meta in field.metadata if field is not None else ():
        if isinstance(meta, Env):
            return meta.names
    return ()


def _env_name(loc: tuple[str, ...]) -> str:
    names = _env_names(_field(loc))
    return names[0] if names else ".".join(loc)


# ------------------------------------------------------------------ checking


def _checked(
    settings: Settings,
    changes: dict[str, Any],
    *,
    where: str,
    name: Callable[[tuple[str, ...]], str],
    strict: bool,
    shown: Mapping[str, Any] | None = None,
) -> Settings:
    """`settings` with `changes` (a dict per table), all fields checked; a bad change is a one-line
    ConfigError naming its source. `shown` holds values as the user wrote them, where that differs.

    Each table is checked on its own model: `strict` reaches it there (Settings, a BaseSettings,
    validates through its own `__init__`, which is always lax)."""
    merged: dict[str, Any] = dict(settings)
    table = ""
    try:
        for key, value in changes.items():
            current = merged.get(key)
            if isinstance(current, _Table) and isinstance(value, Mapping):
                table = key
                merged[key] = type(current).model_validate({**dict(current), **value}, strict=strict)
            else:
                merged[key] = value
        table = ""
        return Settings.model_validate(merged, strict=strict)
    except ValidationError as exc:
        message = _one_line(exc, (table,) if table else (), shown if shown is not None else changes, name)
        raise ConfigError(where + message) from exc


def _one_line(
    exc: ValidationError, table: tuple[str, ...], changes: Mapping[str, Any], name: Callable[[tuple[str, ...]], str]
) -> str:
    """pydantic's report (many lines, its own words) as one line in ours, about the first problem.
    `table`: the table the report is about, if it came from one table's model."""
    error = exc.errors()[0]
    parts = (*table, *(str(part) for part in error["loc"]))
    loc = parts[:2] if parts and parts[0] in _tables() else parts[:1]
    if error["type"] == "extra_forbidden":
        return f"unknown setting {'.'.join(loc)}"
    field = _field(loc)
    rule = field.description if field is not None else error["msg"]
    given: Any = changes
    for part in loc:
        given = given.get(part, error["input"]) if isinstance(given, Mapping) else error["input"]
    return f"{name(loc)} must be {rule} (got {given!r})"
