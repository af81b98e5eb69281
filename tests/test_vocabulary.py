"""The vocabulary: each word defined once, and the plain spellings config files take kept equal to it."""

from __future__ import annotations

import json
from typing import get_args

import pytest

from mathagent import vocabulary
from mathagent.errors import ToolchainError
from mathagent.verify import sandbox


def test_the_config_spellings_are_the_enum_words() -> None:
    assert set(get_args(vocabulary.PoolName)) == {p.value for p in vocabulary.Pool}
    assert set(get_args(vocabulary.SandboxModeName)) == {m.value for m in vocabulary.SandboxMode}
    assert set(get_args(vocabulary.EngineKindName)) == {k.value for k in vocabulary.EngineKind}
    assert set(get_args(vocabulary.StrategyName)) == {k.value for k in vocabulary.StrategyKind}
    assert set(get_args(vocabulary.SessionBackendName)) == {b.value for b in vocabulary.SessionBackend}


def test_a_word_is_its_string_in_sets_json_and_formatting() -> None:
    assert {vocabulary.Pool.WARM, "warm"} == {"warm"}
    assert json.dumps({"sandbox": vocabulary.SandboxKind.NOT_RUN}) == '{"sandbox": "not run"}'
    assert f"{vocabulary.SandboxKind.RLIMITS}" == "rlimits"


def test_sandbox_none_means_rlimits_and_an_unknown_mode_is_refused() -> None:
    assert sandbox.choose("none") == vocabulary.SandboxKind.RLIMITS
    with pytest.raises(ToolchainError, match="unknown sandbox 'jail'"):
        sandbox.choose("jail")
