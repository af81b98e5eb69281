"""Settings: one object built at the CLI edge from flags, env and config files.

Precedence, highest first: command-line flags, environment variables
(`MATHAGENT_*`), `./mathagent.toml`, then `mathagent.toml` in the user config
folder. Nothing is read at import time.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import platformdirs

from mathagent.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

CONFIG_NAME = "mathagent.toml"
ENGINES = ("auto", "vllm", "openai")


@dataclass(frozen=True)
class Settings:
    """Everything a command needs to know about where things are and limits."""

    lean: Path | None = None  # explicit Lean binary
    lean_origin: str = ""  # where `lean` came from, for messages
    project: Path | None = None  # the Lake project to take `lake env` and the header from
    workers: int = field(default_factory=lambda: usable_cores())
    timeout_s: float = 60.0
    memory_mb: int = 8192
    max_bytes: int = 1024 * 1024
    allow_axioms: tuple[str, ...] = ()
    allow_native: bool = False
    use_cache: bool = True
    sandbox: str = "auto"  # auto | bwrap | none
    pool: str | None = None  # cold | warm; None: each command's default
    cache_dir: Path = field(default_factory=lambda: Path(platformdirs.user_cache_dir("mathagent")))
    config_files: tuple[Path, ...] = ()
    # the model
    engine: str = "auto"  # auto | vllm | openai
    model: str | None = None  # hub id, short InternLM2-Math name, or local folder
    base_url: str | None = None  # OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1
    api_key: str | None = None
    tensor_parallel_size: int = 1
    max_model_len: int | None = None
    engine_timeout_s: float = 300.0
    concurrency: int = 16

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with the given fields replaced; `None` values are ignored."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def usable_cores() -> int:
    """Cores this process may run on (respects CPU affinity, unlike os.cpu_count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def user_config_dir() -> Path:
    return Path(platformdirs.user_config_dir("mathagent"))


def load_settings(cwd: Path | None = None, env: dict[str, str] | None = None) -> Settings:
    """Settings from config files and environment (flags are applied by the caller)."""
    cwd = cwd or Path.cwd()
    env = dict(os.environ) if env is None else env
    settings = Settings()
    files = [p for p in (user_config_dir() / CONFIG_NAME, cwd / CONFIG_NAME) if p.is_file()]
    for path in files:  # later files win: the working directory beats the user folder
        settings = _apply_file(settings, path)
    settings = replace(settings, config_files=tuple(files))
    return _apply_env(settings, env)


def _apply_file(settings: Settings, path: Path) -> Settings:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    lean = data.get("lean", {})
    verify = data.get("verify", {})
    if not isinstance(lean, dict) or not isinstance(verify, dict):
        raise ConfigError(f"config file {path}: `[lean]` and `[verify]` must be tables")
    changes: dict[str, Any] = {}
    base = path.parent
    if "path" in lean:
        changes["lean"] = _path(base, lean["path"], path, "lean.path")
        changes["lean_origin"] = f"config file {path}"
    if "project" in lean:
        changes["project"] = _path(base, lean["project"], path, "lean.project")
    for key, attr, kind in (
        ("workers", "workers", int),
        ("timeout", "timeout_s", float),
        ("memory_mb", "memory_mb", int),
        ("max_bytes", "max_bytes", int),
        ("allow_native", "allow_native", bool),
        ("cache", "use_cache", bool),
        ("sandbox", "sandbox", str),
        ("pool", "pool", str),
    ):
        if key in verify:
            changes[attr] = _typed(verify[key], kind, path, f"verify.{key}")
    if changes.get("sandbox", "auto") not in ("auto", "bwrap", "none"):
        raise ConfigError(f"config file {path}: `verify.sandbox` must be auto, bwrap or none")
    if changes.get("pool", "cold") not in ("cold", "warm"):
        raise ConfigError(f"config file {path}: `verify.pool` must be cold or warm")
    engine = data.get("engine", {})
    if not isinstance(engine, dict):
        raise ConfigError(f"config file {path}: `[engine]` must be a table")
    for key, attr, kind in (
        ("kind", "engine", str),
        ("model", "model", str),
        ("base_url", "base_url", str),
        ("api_key", "api_key", str),
        ("tensor_parallel_size", "tensor_parallel_size", int),
        ("max_model_len", "max_model_len", int),
        ("timeout", "engine_timeout_s", float),
        ("concurrency", "concurrency", int),
    ):
        if key in engine:
            changes[attr] = _typed(engine[key], kind, path, f"engine.{key}")
    if changes.get("engine", "auto") not in ENGINES:
        raise ConfigError(f"config file {path}: `engine.kind` must be one of {', '.join(ENGINES)}")
    if "allow_axioms" in verify:
        axioms = verify["allow_axioms"]
        if not isinstance(axioms, list) or not all(isinstance(a, str) for a in axioms):
            raise ConfigError(f"config file {path}: `verify.allow_axioms` must be a list of names")
        changes["allow_axioms"] = tuple(axioms)
    return replace(settings, **changes)


def _apply_env(settings: Settings, env: dict[str, str]) -> Settings:
    changes: dict[str, Any] = {}
    if env.get("MATHAGENT_LEAN"):
        changes["lean"] = Path(env["MATHAGENT_LEAN"]).expanduser()
        changes["lean_origin"] = "MATHAGENT_LEAN"
    if env.get("MATHAGENT_PROJECT"):
        changes["project"] = Path(env["MATHAGENT_PROJECT"]).expanduser()
    for var, attr in (("MATHAGENT_ENGINE", "engine"), ("MATHAGENT_MODEL", "model"), ("MATHAGENT_BASE_URL", "base_url")):
        if env.get(var):
            changes[attr] = env[var]
    if changes.get("engine", "auto") not in ENGINES:
        raise ConfigError(f"MATHAGENT_ENGINE must be one of {', '.join(ENGINES)}")
    api_key = env.get("MATHAGENT_API_KEY") or env.get("OPENAI_API_KEY")
    if api_key:
        changes["api_key"] = api_key
    if env.get("MATHAGENT_CACHE_DIR"):
        changes["cache_dir"] = Path(env["MATHAGENT_CACHE_DIR"]).expanduser()
    return replace(settings, **changes)


def _path(base: Path, value: object, source: Path, key: str) -> Path:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"config file {source}: `{key}` must be a path")
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _typed(value: object, kind: type, source: Path, key: str) -> Any:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ConfigError(f"config file {source}: `{key}` must be {kind.__name__}, got {value!r}")
    return value
