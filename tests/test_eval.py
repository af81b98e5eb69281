"""`mathagent eval`: the shipped sample set end to end with a scripted model and
the real verifier; the numbers in the report against hand-computed ones."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import ROOT
from mathagent.errors import InputError
from mathagent.eval.datasets import _gsm8k, resolve
from mathagent.eval.metrics import ks_for, pass_at_k
from mathagent.verify.toolchain import LeanToolchain
from scripted_server import Rule, ScriptedServer

pytestmark = pytest.mark.slow  # whole eval runs in subprocesses


def proof(name: str, body: str) -> str:
    return f"```lean4\ntheorem {name} {body}\n```"


# What the scripted model answers for each problem of the shipped sample set
# (replies to one prompt are handed out in turn).
SCRIPT = [
    Rule(
        r"Lean reports these errors:.*sample_mul_two",
        [proof("sample_mul_two", ": Eq (N.mul four two) (N.add four four) := Eq.refl _")],
    ),
    Rule(
        r"Complete the following.*sample_two_add_two",
        [
            proof("sample_two_add_two", ": Eq (N.add two two) four := Eq.refl _"),
            proof("sample_two_add_two", ": Eq (N.add two two) four := Eq.refl two"),
        ],
    ),
    Rule(
        r"Complete the following.*sample_add_zero",
        [proof("sample_add_zero", "(n : N) : Eq (N.add n N.z) n := Eq.refl n")],
    ),
    Rule(
        r"Complete the following.*sample_mul_two",
        [proof("sample_mul_two", ": Eq (N.mul four two) (N.add four four) := Eq.refl four")],
    ),
    Rule(r"Complete the following.*sample_symm", [proof("sample_symm", "(a b : N) (h : Eq a b) : Eq b a := h")]),
    Rule(r"What is 2\+3", ["The answer is \\boxed{5}.", "The answer is \\boxed{6}."]),
    Rule(r"sum of the roots", ["The sum is \\boxed{5}."]),
    Rule(
        r"frac\{3\}\{4\}",
        ["We get \\boxed{\\frac{7}{8}}.", "We get \\boxed{0.875}.", "We get \\boxed{1}.", "So \\boxed{\\frac{7}{8}}"],
    ),
    Rule(r"pencils", ["The answer is \\boxed{19}."]),
]


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    server = ScriptedServer(SCRIPT)
    server.start()
    yield server
    server.stop()


def mathagent(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mathagent", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "COLUMNS": "200"},
    )


def run_sample(server: ScriptedServer, run_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return mathagent(
        "eval",
        "sample",
        "--base-url",
        server.base_url,
        "--run-dir",
        str(run_dir),
        "--samples",
        "2",
        "--solve-samples",
        "4",
        *extra,
    )


def test_pass_at_k_estimator() -> None:
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)
    assert pass_at_k(10, 3, 5) == pytest.approx(1 - 21 / 252)
    assert pass_at_k(5, 0, 3) == 0.0 and pass_at_k(5, 5, 1) == 1.0
    assert pass_at_k(4, 2, 4) == 1.0
    assert ks_for(8) == [1, 2, 4, 8] and ks_for(6) == [1, 2, 4, 6] and ks_for(1) == [1]
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)


def test_sample_set_end_to_end_matches_hand_computed_numbers(
    tmp_path: Path, server: ScriptedServer, lean: LeanToolchain
) -> None:
    run_dir = tmp_path / "run"
    proc = run_sample(server, run_dir, "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = json.loads(proc.stdout)
    # formal, n = 2 proofs per problem in round 1:
    #   two_add_two: right + wrong (c=1); add_zero: right twice (c=2);
    #   mul_two: wrong twice, the repair (round 2) is right; symm: wrong, no repair offered.
    assert (m["formal"], m["formal_solved"], m["formal_samples"]) == (4, 3, 2)
    assert m["formal_pass_at_k"] == {"1": pytest.approx((0.5 + 1 + 0 + 0) / 4), "2": pytest.approx((1 + 1 + 0 + 0) / 4)}
    assert m["solved_by_round"] == {"1": 2, "2": 3}
    # word problems, n = 4 answers each: 2+3 -> 5,6,5,6 (c=2); roots -> 5 x4 (c=4);
    #   fraction -> 7/8, 0.875, 1, 7/8 (c=3); pencils -> 19 x4 (c=0)
    assert (m["informal"], m["informal_solved"], m["informal_samples"]) == (4, 3, 4)
    p2 = [1 - 1 / 6, 1, 1, 0]
    assert m["informal_pass_at_k"] == {
        "1": pytest.approx((0.5 + 1 + 0.75 + 0) / 4),
        "2": pytest.approx(sum(p2) / 4, abs=1e-4),
        "4": pytest.approx(0.75),
    }
    assert m["attempts_per_solved"] == pytest.approx((1 + 1 + 3) / 3, abs=0.01)
    assert m["reasons"] == {"lean_error": 6} and m["verdicts"] == {"rejected": 6, "verified": 4}
    # the run folder: settings, results, summary, report with its plots inlined
    settings = json.loads((run_dir / "settings.json").read_text())
    assert settings["dataset"] == "sample" and len(settings["dataset_sha256"]) == 64
    assert settings["budget"]["samples"] == 2 and settings["lean_version"].startswith("Lean (version")
    results = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert len(results) == 8
    # the errors counted are the rows with an `error`; word problems this Lean cannot state say why in a note
    assert m["errors"] == sum(1 for r in results if r["error"]) == 0
    assert all("prelude-only" in r["note"] for r in results if r["reference_answer"] is not None)
    html = (run_dir / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 4 and "pass@1 (n=2, round 1)" in html
    # settings as a table of keys and values, nested ones spelled out, no Python dicts
    table = re.search(r'<table id="settings">(.*?)</table>', html, re.S)
    assert table is not None
    shown = dict(re.findall(r"<tr><th>([^<]*)</th><td><code>([^<]*)</code></td></tr>", table.group(1)))
    assert shown["dataset"] == "sample" and shown["budget.samples"] == "2" and shown["budget.solve_samples"] == "4"
    assert shown["verify.pool"] in ("warm", "cold") and "{&#x27;" not in html
    for name in ("pass_at_k", "solved_by_round", "time_split", "reasons", "overview"):
        png = (run_dir / "plots" / f"{name}.png").read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 5000


def test_rerun_resumes_and_refuses_changed_settings(
    tmp_path: Path, server: ScriptedServer, lean: LeanToolchain
) -> None:
    run_dir = tmp_path / "run"
    started = time.monotonic()
    first = run_sample(server, run_dir, "--samples", "1")
    elapsed = time.monotonic() - started
    assert first.returncode == 0, first.stderr[-2000:]
    # one proof per problem: pass@1 only; the wall time is this run's, below the command's
    assert "pass@1 (n=1, round 1)" in first.stdout and "pass@2 (n=1" not in first.stdout
    wall = re.search(r"wall time\s*│\s*([\d.]+)s \(this run: 8 problems\)", first.stdout)
    assert wall is not None and float(wall.group(1)) <= elapsed, first.stdout
    requests = len(server.requests)
    again = run_sample(server, run_dir, "--samples", "1")
    assert again.returncode == 0 and "0 to run" in again.stderr
    assert "nothing left to run" in again.stdout
    assert len(server.requests) == requests  # nothing solved twice
    changed = mathagent("eval", "sample", "--base-url", server.base_url, "--run-dir", str(run_dir), "--samples", "8")
    assert changed.returncode == 2 and "--samples" in changed.stderr  # the setting that differs


def test_compare_lists_what_repair_added(tmp_path: Path, server: ScriptedServer, lean: LeanToolchain) -> None:
    with_repair, without = tmp_path / "a", tmp_path / "b"
    assert run_sample(server, with_repair, "--rounds", "2").returncode == 0
    assert run_sample(server, without, "--rounds", "1").returncode == 0
    proc = mathagent("eval", "compare", str(with_repair), str(without))
    assert proc.returncode == 0, proc.stderr
    assert f"solved only by {with_repair} (1): sample_mul_two" in proc.stdout
    assert f"solved only by {without} (0)" in proc.stdout


def test_named_datasets_come_from_the_data_folder_or_say_where_to_put_them(tmp_path: Path) -> None:
    (tmp_path / "minif2f-test.jsonl").write_text('{"name": "x", "formal_statement": "theorem x : True := by sorry"}\n')
    found = resolve("minif2f-test", tmp_path)
    assert found.rows == 1 and found.path == tmp_path / "minif2f-test.jsonl"

    def offline(url: str) -> bytes:
        raise OSError("network is unreachable")

    with pytest.raises(InputError) as info:
        resolve("gsm8k-test", tmp_path, download=offline)
    assert str(tmp_path / "gsm8k-test.jsonl") in (info.value.hint or "")
    with pytest.raises(InputError, match="no dataset"):
        resolve("imaginary", tmp_path)


def test_gsm8k_rows_are_converted() -> None:
    rows = _gsm8k([{"question": "Q?", "answer": "Some steps.\n#### 1,200"}])
    assert rows == [{"id": "gsm8k-test-0", "problem": "Q?", "answer": "1200"}]


def test_rescore_rejudges_a_finished_run_in_place(tmp_path: Path, server: ScriptedServer, lean: LeanToolchain) -> None:
    run_dir = tmp_path / "run"
    assert run_sample(server, run_dir).returncode == 0
    results = run_dir / "results.jsonl"
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    word = [r for r in rows if r.get("reference_answer") is not None]
    assert word and all(r["sample_texts"] and r["reference_parsed"] for r in word)
    honest = json.loads((run_dir / "summary.json").read_text())
    # an older checker's verdicts, and a row from before sample texts were kept
    for r in word:
        r["reference_match"], r["sample_matches"] = False, [False] * len(r["sample_matches"])
    word[0]["sample_texts"] = []
    results.write_text("".join(json.dumps(r) + "\n" for r in rows))

    proc = mathagent("eval", "rescore", str(run_dir), "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rescored = json.loads(proc.stdout)
    assert rescored["informal_solved"] == honest["informal_solved"]
    assert rescored["informal_pass_at_k"] == honest["informal_pass_at_k"]
    assert json.loads((run_dir / "summary.json").read_text()) == rescored
    missing = mathagent("eval", "rescore", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "not an eval run folder" in missing.stderr
    assert "fix: give a folder `mathagent eval run` wrote" in missing.stderr
