"""Against a real elan toolchain with Mathlib (skipped where there is none)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mathagent.config import load_settings
from mathagent.errors import ToolchainError
from mathagent.project import default_header, find_project
from mathagent.verify.tasks import VerifyTask
from mathagent.verify.toolchain import LeanToolchain, find_lean
from mathagent.verify.verifier import VerifyOptions, verify_tasks

ROOT = Path(__file__).resolve().parent.parent


def _mathlib_toolchain() -> LeanToolchain | None:
    project = find_project(ROOT)
    try:
        toolchain = find_lean(load_settings(), project)
    except ToolchainError:
        return None
    if toolchain.prelude_only or not any("mathlib" in p.lower() for p in toolchain.lean_path):
        return None
    return toolchain


MATHLIB = _mathlib_toolchain()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.mathlib,
    pytest.mark.skipif(MATHLIB is None, reason="needs an elan toolchain with Mathlib built (`mathagent lean setup`)"),
]


def test_minif2f_style_proofs_with_mathlib() -> None:
    assert MATHLIB is not None
    header = default_header(find_project(ROOT))
    statement = "theorem mathd_algebra_10 : abs ((120 : ℝ) / 100 * 30 - 130 / 100 * 20) = 10 := by sorry"
    tasks = [
        VerifyTask(id="good", formal_statement=statement, proof="\n  norm_num [abs_of_nonneg]"),
        VerifyTask(id="sorry", formal_statement=statement, proof="\n  sorry"),
        VerifyTask(id="native", formal_statement="theorem t : 2 + 2 = 4 := by sorry", proof="\n  native_decide"),
        VerifyTask(id="wrong", formal_statement=statement, proof="\n  simp"),
    ]
    options = VerifyOptions(workers=2, timeout_s=300, memory_mb=16384, default_header=header)
    verdicts = {v.id: v for v in verify_tasks(MATHLIB, options, tasks)}
    assert verdicts["good"].verified, verdicts["good"]
    assert set(verdicts["good"].axioms) <= {"propext", "Quot.sound", "Classical.choice"}
    assert verdicts["sorry"].reasons == ["sorry"]
    assert verdicts["native"].reasons == ["banned:native_decide"]
    assert verdicts["wrong"].verdict == "rejected"
