"""Settings from mathagent.toml, MATHAGENT_* variables and flags: each bad value is one clear line, exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from mathagent.config import Settings, load_settings, user_config_dir
from mathagent.errors import ConfigError

EXAMPLE = str(ROOT / "examples" / "two_plus_two.lean")


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """No MATHAGENT_* from the caller, and a user config folder of the test's own."""
    return {"PATH": os.environ["PATH"], "HOME": str(home), "XDG_CONFIG_HOME": str(home / "xdg"), **extra}


def mathagent(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mathagent", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**clean_env(cwd), "COLUMNS": "200", **env},
    )


def only_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The command failed with exit 2 and said why in exactly one line."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0].removeprefix("error: ")


# ---------------------------------------------------------------- mathagent.toml

BAD_FILES = [
    ("[verify]\nworkers = 0", "verify.workers must be an integer from 1 to 1024 (got 0)"),
    ("[verify]\nworkers = -3", "verify.workers must be an integer from 1 to 1024 (got -3)"),
    ("[verify]\nworkers = 5000", "verify.workers must be an integer from 1 to 1024 (got 5000)"),
    ("[verify]\nworkers = 2.5", "verify.workers must be an integer from 1 to 1024 (got 2.5)"),
    ("[verify]\nmemory_mb = 1", "verify.memory_mb must be a whole number of megabytes >= 256 (got 1)"),
    ("[verify]\ntimeout = -5", "verify.timeout must be a number of seconds above 0 and at most 86400 (got -5)"),
    ("[verify]\ntimeout = 0", "verify.timeout must be a number of seconds above 0 and at most 86400 (got 0)"),
    ("[verify]\ntimeout = 'x'", "verify.timeout must be a number of seconds above 0 and at most 86400 (got 'x')"),
    ("[verify]\nmax_bytes = 0", "verify.max_bytes must be an integer >= 1 (got 0)"),
    ("[verify]\ncache = 'yes'", "verify.cache must be true or false (got 'yes')"),
    ("[verify]\nsandbox = 'docker'", "verify.sandbox must be one of auto, bwrap, none (got 'docker')"),
    ("[verify]\npool = 'hot'", "verify.pool must be one of cold, warm (got 'hot')"),
    (
        "[verify]\nallow_axioms = ['propext', 'not a name']",
        "verify.allow_axioms must be a list of Lean names, e.g. [\"Classical.choice\"] (got ['propext', 'not a name'])",
    ),
    ("[engine]\nkind = 'foo'", "engine.kind must be one of auto, torch, vllm, openai (got 'foo')"),
    (
        "[engine]\nbase_url = 'localhost:8000'",
        "engine.base_url must be an http(s) URL, e.g. http://127.0.0.1:8000/v1 (got 'localhost:8000')",
    ),
    ("[engine]\ntensor_parallel_size = 0", "engine.tensor_parallel_size must be an integer >= 1 (got 0)"),
    ("[engine]\nmax_model_len = 0", "engine.max_model_len must be an integer >= 1 (got 0)"),
    ("[engine]\ntimeout = -1", "engine.timeout must be a number of seconds above 0 and at most 86400 (got -1)"),
    ("[engine]\nconcurrency = 0", "engine.concurrency must be an integer >= 1 (got 0)"),
    ("[lean]\npath = 3", "lean.path must be a path (got 3)"),
    (
        "[verify]\ntimout = 5",
        "unknown key verify.timout; did you mean verify.timeout? (known keys in [verify]: workers, timeout, "
        "memory_mb, max_bytes, allow_axioms, allow_native, cache, sandbox, pool, session_backend, repl)",
    ),
    (
        "[engine]\nbogus = 1",
        "unknown key engine.bogus (known keys in [engine]: kind, model, base_url, api_key, tensor_parallel_size, "
        "max_model_len, timeout, concurrency)",
    ),
    (
        "[verfy]\nworkers = 2",
        "unknown table [verfy]; did you mean [verify]? (known tables: [lean], [verify], [engine], [serve], [cluster])",
    ),
    ("[serve]\nport = 70000", "serve.port must be a port number from 0 to 65535 (got 70000)"),
    ("[serve]\nmax_queue = 0", "serve.max_queue must be an integer >= 1 (got 0)"),
    ("workers = 2", "unknown key workers (settings go in the tables [lean], [verify], [engine], [serve], [cluster])"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("text", "message"), BAD_FILES, ids=[m.split(" ")[0] + ":" + t for t, m in BAD_FILES])
def test_bad_value_in_config_file(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "mathagent.toml"
    config.write_text(text + "\n")
    proc = mathagent("verify", EXAMPLE, cwd=tmp_path)
    assert only_error_line(proc) == f"config file {config}: {message}"


@pytest.mark.slow
def test_bad_user_config_file_is_named_and_other_commands_check_too(tmp_path: Path) -> None:
    user_file = tmp_path / "xdg" / "mathagent" / "mathagent.toml"
    user_file.parent.mkdir(parents=True)
    user_file.write_text("[verify]\nworkers = 0\n")
    for args in (["doctor", "--json"], ["model", "show"]):
        proc = mathagent(*args, cwd=tmp_path)
        message = "verify.workers must be an integer from 1 to 1024 (got 0)"
        assert only_error_line(proc) == f"config file {user_file}: {message}"


def test_unreadable_toml_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "mathagent.toml").write_text("[verify\n")
    with pytest.raises(ConfigError, match="is not valid TOML") as caught:
        load_settings(tmp_path, clean_env(tmp_path))
    assert "\n" not in caught.value.message


# ---------------------------------------------------------------- environment

BAD_ENV = [
    ("MATHAGENT_ENGINE", "foo", "MATHAGENT_ENGINE must be one of auto, torch, vllm, openai (got 'foo')"),
    ("MATHAGENT_WORKERS", "0", "MATHAGENT_WORKERS must be an integer from 1 to 1024 (got '0')"),
    ("MATHAGENT_WORKERS", "many", "MATHAGENT_WORKERS must be an integer from 1 to 1024 (got 'many')"),
    ("MATHAGENT_TIMEOUT", "-5", "MATHAGENT_TIMEOUT must be a number of seconds above 0 and at most 86400 (got '-5')"),
    ("MATHAGENT_MEMORY_MB", "1", "MATHAGENT_MEMORY_MB must be a whole number of megabytes >= 256 (got '1')"),
    ("MATHAGENT_SANDBOX", "docker", "MATHAGENT_SANDBOX must be one of auto, bwrap, none (got 'docker')"),
    (
        "MATHAGENT_BASE_URL",
        "ftp://h/v1",
        "MATHAGENT_BASE_URL must be an http(s) URL, e.g. http://127.0.0.1:8000/v1 (got 'ftp://h/v1')",
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize(("var", "value", "message"), BAD_ENV, ids=[f"{v}={x}" for v, x, _ in BAD_ENV])
def test_bad_environment_variable(tmp_path: Path, var: str, value: str, message: str) -> None:
    proc = mathagent("verify", EXAMPLE, cwd=tmp_path, **{var: value})
    assert only_error_line(proc) == message


# ---------------------------------------------------------------- flags

BAD_FLAGS = [
    (["verify", EXAMPLE, "-j", "0"], "'--workers' / '-j': Input should be greater than or equal to 1"),
    (["verify", EXAMPLE, "--workers", "5000"], "'--workers' / '-j': Input should be less than or equal to 1024"),
    (["verify", EXAMPLE, "--timeout", "0"], "'--timeout': must be a number of seconds above 0 and at most 86400"),
    (["verify", EXAMPLE, "--timeout", "-5"], "'--timeout': must be a number of seconds above 0 and at most 86400"),
    (["verify", EXAMPLE, "--memory-mb", "1"], "'--memory-mb': Input should be greater than or equal to 256"),
    (["verify", EXAMPLE, "--max-bytes", "0"], "'--max-bytes': Input should be greater than or equal to 1"),
    (["verify", EXAMPLE, "--sandbox", "docker"], "--sandbox: must be auto, bwrap or none"),
    (["verify", EXAMPLE, "--pool", "hot"], "--pool: must be cold or warm"),
    (["solve", "1+1", "--engine", "foo"], "--engine: must be one of auto, torch, vllm, openai (got 'foo')"),
    (["solve", "1+1", "--base-url", "localhost:8000"], "'--base-url': must be an http(s) URL"),
    (["solve", "1+1", "--samples", "0"], "'--samples' / '-k': Input should be greater than or equal to 1"),
    (["batch", "p.jsonl", "--samples", "300"], "'--samples': Input should be less than or equal to 256"),
    (["batch", "p.jsonl", "--concurrency", "0"], "'--concurrency' / '-c': Input should be greater than or equal to 1"),
    (["eval", "run", "d.jsonl", "--rounds", "0"], "'--rounds': Input should be greater than or equal to 1"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("args", "message"), BAD_FLAGS, ids=[" ".join(a[2:]) for a, _ in BAD_FLAGS])
def test_bad_flag(tmp_path: Path, args: list[str], message: str) -> None:
    proc = mathagent(*args, cwd=tmp_path)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    # typer frames usage errors in a box; the reason is still one line naming the flag and the range
    assert [line for line in proc.stderr.splitlines() if message in line], proc.stderr


@pytest.mark.slow
def test_help_shows_the_defaults(tmp_path: Path) -> None:
    verify = mathagent("verify", "--help", cwd=tmp_path).stdout
    assert "[default: all usable cores (" in verify
    assert "[default: 60]" in verify and "[default: 8192]" in verify
    assert "[default: PROBLEMS.results.jsonl]" in mathagent("batch", "--help", cwd=tmp_path).stdout


# ---------------------------------------------------------------- good values and precedence


def test_each_source_lands_in_settings_flags_beat_env_beat_cwd_file_beat_user_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    user_file = user_config_dir() / "mathagent.toml"
    user_file.parent.mkdir(parents=True)
    user_file.write_text(
        '[lean]\nproject = "lake-project"\n'
        '[verify]\nworkers = 2\ntimeout = 10\nmemory_mb = 1000\nallow_axioms = ["Classical.choice"]\n'
        '[engine]\nkind = "vllm"\nmodel = "user-model"\nmax_model_len = 4096\n'
    )
    work = tmp_path / "work"
    work.mkdir()
    (work / "mathagent.toml").write_text(
        '[lean]\npath = "bin/lean"\n[verify]\ntimeout = 20\npool = "warm"\n[engine]\nmodel = "cwd-model"\n'
    )
    env = clean_env(tmp_path, MATHAGENT_MODEL="env-model", MATHAGENT_MEMORY_MB="2000", OPENAI_API_KEY="sk-env")
    settings = load_settings(work, env)
    assert settings.config_files == (user_file, work / "mathagent.toml")
    lean, verify, engine = settings.lean, settings.verify, settings.engine
    assert lean.project == user_file.parent / "lake-project"  # relative to its file's folder
    assert lean.path == work / "bin" / "lean" and settings.lean_origin == f"config file {work / 'mathagent.toml'}"
    assert verify.workers == 2 and verify.allow_axioms == ("Classical.choice",)
    assert verify.timeout == 20.0 and verify.pool == "warm"
    assert engine.kind == "vllm" and engine.max_model_len == 4096
    assert engine.model == "env-model" and verify.memory_mb == 2000 and engine.api_key == "sk-env"

    # None: flag not given
    flagged = settings.with_overrides(verify={"memory_mb": 3000, "workers": None}, engine={"model": "flag-model"})
    assert flagged.verify.memory_mb == 3000 and flagged.verify.workers == 2 and flagged.engine.model == "flag-model"
    assert flagged.engine.kind == "vllm"  # the rest of the table stays
    assert settings.verify.memory_mb == 2000  # immutable: the original is unchanged
    with pytest.raises(ValueError, match="frozen"):
        settings.verify.workers = 4


def test_mathagent_api_key_beats_openai_api_key_and_empty_means_unset(tmp_path: Path) -> None:
    both = load_settings(tmp_path, clean_env(tmp_path, MATHAGENT_API_KEY="sk-ours", OPENAI_API_KEY="sk-openai"))
    assert both.engine.api_key == "sk-ours"
    empty = load_settings(tmp_path, clean_env(tmp_path, MATHAGENT_WORKERS="", MATHAGENT_ENGINE=""))
    assert empty.engine.kind == "auto" and empty.verify.workers >= 1


def test_the_environment_is_the_mapping_given_not_the_process_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MATHAGENT_WORKERS", "5")
    monkeypatch.setenv("MATHAGENT_ENGINE", "vllm")
    given = load_settings(tmp_path, clean_env(tmp_path, MATHAGENT_WORKERS="3", MATHAGENT_RAY="auto"))
    assert given.verify.workers == 3 and given.engine.kind == "auto" and given.cluster.address == "auto"
    lower = load_settings(tmp_path, clean_env(tmp_path, mathagent_timeout="7", MATHAGENT_SERVE_API_KEY="k"))
    assert lower.verify.timeout == 7.0 and lower.serve.api_key == "k" and lower.engine.api_key is None


def test_overrides_are_checked_like_every_other_source() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings().with_overrides(verify={"timeout": -5.0})
    assert caught.value.message == "verify.timeout must be a number of seconds above 0 and at most 86400 (got -5.0)"
    with pytest.raises(ConfigError, match="unknown setting timeout$"):
        Settings().with_overrides(timeout=5)
    with pytest.raises(ConfigError, match="unknown setting verify.timout$"):
        Settings().with_overrides(verify={"timout": 5})


@pytest.mark.slow
def test_env_beats_file_through_the_cli(tmp_path: Path) -> None:
    (tmp_path / "mathagent.toml").write_text('[engine]\nbase_url = "http://h:1/v1"\nmodel = "from-file"\n')
    from_file = json.loads(mathagent("model", "show", "--json", cwd=tmp_path).stdout)
    assert from_file["model"] == "from-file" and from_file["base_url"] == "http://h:1/v1"
    from_env = json.loads(mathagent("model", "show", "--json", cwd=tmp_path, MATHAGENT_MODEL="from-env").stdout)
    assert from_env["model"] == "from-env" and from_env["base_url"] == "http://h:1/v1"
