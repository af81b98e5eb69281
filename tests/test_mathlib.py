"""Against a real elan toolchain with Mathlib (skipped where there is none)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mathagent.agent.search import SearchBudget, SearchResult, SearchStop, best_first_search
from mathagent.config import load_settings
from mathagent.engines.openai import OpenAIConfig, OpenAIEngine
from mathagent.errors import ToolchainError
from mathagent.project import default_header, find_project
from mathagent.verify import sandbox
from mathagent.verify.session import ProofSession, SessionLimits
from mathagent.verify.tasks import VerifyTask
from mathagent.verify.toolchain import LeanToolchain, find_lean
from mathagent.verify.verifier import Verifier, VerifyOptions, verify_tasks
from scripted_server import Rule, ScriptedServer

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


def test_a_proof_session_closes_goals_and_the_search_finds_a_verified_proof() -> None:
    assert MATHLIB is not None
    header = default_header(find_project(ROOT))
    statement = "theorem mathd_algebra_10 : abs ((120 : ℝ) / 100 * 30 - 130 / 100 * 20) = 10 := by sorry"
    server = ScriptedServer([Rule(r"⊢ \|", ["simp", "norm_num [abs_of_nonneg]", "linarith"], [-0.9, -0.2, -0.5])])
    server.start()

    async def go() -> tuple[bool, SearchResult]:
        limits = SessionLimits(timeout_s=300, memory_mb=16384)
        async with ProofSession(MATHLIB, limits, sandbox.choose("auto")) as session:
            start = await session.open(header, statement)
            step = await session.apply(start, "norm_num [abs_of_nonneg]")
            closed = step.state is not None and step.state.solved
        engine = OpenAIEngine(OpenAIConfig(base_url=server.base_url, model="scripted", max_retries=0))
        options = VerifyOptions(workers=1, timeout_s=300, memory_mb=16384, default_header=header)
        try:
            async with (
                Verifier(MATHLIB, options) as verifier,
                ProofSession(MATHLIB, limits, sandbox.choose("auto")) as session,
            ):
                found = await best_first_search(
                    session,
                    engine,
                    verifier,
                    task_id="mathd_algebra_10",
                    header=header,
                    statement=statement,
                    budget=SearchBudget(expansions=4, candidates=3),
                )
        finally:
            await engine.aclose()
        return closed, found

    try:
        closed, found = asyncio.run(go())
    finally:
        server.stop()
    assert closed
    assert found.stop is SearchStop.PROVED and found.verified
    assert found.proof is not None and "norm_num [abs_of_nonneg]" in found.proof


def test_solve_with_the_tactic_strategy_proves_minif2f_style_goals() -> None:
    import json
    import subprocess
    import sys

    goals = {
        "theorem mathd_algebra_10 : abs ((120 : ℝ) / 100 * 30 - 130 / 100 * 20) = 10 :=": "norm_num [abs_of_nonneg]",
        "theorem t_add (a b : ℕ) (h : a = b) : a + 0 = b :=": "simpa using h",
        "theorem t_sq (x : ℝ) : 0 ≤ x ^ 2 :=": "positivity",
    }
    rules = [Rule(r"⊢", ["linarith", *goals.values()], [-2.0, -0.5, -0.5, -0.5])]
    server = ScriptedServer(rules)
    server.start()
    try:
        for statement in goals:
            argv = [sys.executable, "-m", "mathagent", "solve", statement, "--strategy", "tactic"]
            argv += ["--base-url", server.base_url, "--expansions", "4", "--candidates", "4", "--json"]
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=900, cwd=ROOT)
            assert proc.returncode == 0, proc.stderr[-2000:]
            result = json.loads(proc.stdout)
            assert result["status"] == "verified", result
            assert any(t in result["proof"] for t in goals.values()), result["proof"]
    finally:
        server.stop()
