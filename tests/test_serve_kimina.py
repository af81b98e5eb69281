"""The published kimina-client, unchanged, against a live `mathagent serve`: it must call genuine proofs
valid and every cheat the verifier knows invalid.

The client runs in its own Python (it needs 3.12; see `serve_support.kimina_python`). Snippets are whole
prelude files, as kimina clients send them; with `--tasks` the server also knows which statement each
snippet id must prove.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import PRELUDE_HEADER, ROOT
from mathagent.verify.toolchain import LeanToolchain
from serve_support import (
    AXIOM_FREE,
    GENUINE_FILE,
    RUNAWAY_FILE,
    STATEMENT,
    TYPE_ERROR_FILE,
    Server,
    kimina_python,
    run_kimina,
    serving,
)

pytestmark = pytest.mark.slow

FALSE = "theorem bad : Eq two ten := Eq.refl _\n"  # Lean rejects this, unless the check is switched off or skipped
DOC_TRICK = '/--/ " -/\naxiom propext : False -- "\ntheorem t : False := propext\n'
WITH_SORRY = AXIOM_FREE + "axiom sorryAx (α : Sort u) (synthetic : Bool) : α\n"

# Every whole-file attack of the verifier's tests (tests/test_verifier.py, tests/test_soundness.py), as a
# kimina snippet; each with the reason the verifier gives.
ATTACKS = {
    "exit": (AXIOM_FREE + "theorem ok : Eq two two := Eq.refl _\n#exit\n" + FALSE, "banned:#exit"),
    "smuggled_axiom": ((ROOT / "examples" / "smuggled_axiom.lean").read_text(), "banned:axiom"),
    "doc_comment_hides_axiom": (AXIOM_FREE + DOC_TRICK, "banned:axiom"),
    "skip_kernel": (AXIOM_FREE + "set_option debug.skipKernelTC true\n" + FALSE, "banned:set_option debug"),
    "quoted_option": (AXIOM_FREE + "set_option «debug».skipKernelTC true\n" + FALSE, "banned:set_option debug"),
    "bootstrap": (
        AXIOM_FREE + "set_option «bootstrap».inductiveCheckResultingUniverse false\n",
        "banned:set_option bootstrap",
    ),
    "implemented_by": (
        AXIOM_FREE + "@[«implemented_by» two] noncomputable def g : N := two\n",
        "banned:elaborator attribute",
    ),
    "init_attribute": (AXIOM_FREE + "attribute [init] two\n", "banned:elaborator attribute"),
    "command_elab": (AXIOM_FREE + "attribute [command_elab] two\n", "banned:elaborator attribute"),
    "include_str": (AXIOM_FREE + 'noncomputable def s := include_str "x"\n', "banned:include_str"),
    "meta_programming": (AXIOM_FREE + "open Lean Elab Command\n", "banned:meta programming"),
    "warn_sorry_off": (AXIOM_FREE + "set_option warn.sorry false\n", "banned:set_option warn"),
    "verso_docs": (AXIOM_FREE + "set_option doc.verso true\n", "banned:set_option doc"),
    "notation": (AXIOM_FREE + 'notation "x" => two\n', "banned:notation"),
    "example_hides_synthetic_sorry": (
        WITH_SORRY.replace("axiom sorryAx", "-- axiom sorryAx") + "example : Eq two four := sorryAx _ Bool.true\n",
        "banned:sorryAx",
    ),
    "sorry_in_a_namespace": (
        WITH_SORRY + "theorem x : Eq two two := Eq.refl _ namespace A theorem t : Eq two four := "
        "sorryAx _ Bool.true end A\n",
        "banned:axiom",
    ),
    "private_sorry": (
        WITH_SORRY + "namespace A\nprivate theorem p : Eq two four := sorryAx _ Bool.true\nend A\n",
        "banned:axiom",
    ),
    "fake_propext": (
        AXIOM_FREE + "axiom propext {P : Prop} : P\ntheorem t : Eq two ten := propext\n",
        "banned:axiom",
    ),
    "interpolation": (
        'def s : String := s!"{ \'"\' }" axiom hidden : False -- "\ntheorem u : False := hidden\n',
        "banned:",
    ),
    "guard_msgs": ("/-- warning: declaration uses 'sorry' -/\n#guard_msgs in\ntheorem u : False := sorry\n", "banned:"),
    "native_decide_implemented_by": (
        "def trueImpl (_ : Unit) : Bool := true\n@[implemented_by trueImpl] def lies (_ : Unit) : Bool := false\n"
        "theorem l : lies () = true := by native_decide\ntheorem u : False := Bool.noConfusion (l.symm.trans rfl)\n",
        "banned:",
    ),
    "metaprogram": (
        "open Lean Elab Command in\nrun_cmd elabCommand (← `(axiom hidden : False))\ntheorem u : False := hidden\n",
        "banned:",
    ),
    "eval": ("#eval (pure () : IO Unit)\ntheorem u : False := sorry\n", "banned:"),
}
# Not audited rejections but Lean's own errors: the client sees Lean's messages, as from kimina.
LEAN_ERRORS = {
    "type_error": TYPE_ERROR_FILE,
    "unterminated_comment": AXIOM_FREE + "theorem ok : Eq two two := Eq.refl _\n/- the rest of the file is hidden\n",
    "imports_on_a_prelude_lean": "import Mathlib\ntheorem t : 1 + 1 = 2 := by norm_num\n",
}


@pytest.fixture(scope="module")
def client_python() -> str:
    return kimina_python()


@pytest.fixture(scope="module")
def server(lean: LeanToolchain, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving(lean, tmp_path_factory.mktemp("serve"), "--workers", "2", "--no-cache") as live:
        yield live


def test_the_published_client_judges_as_the_verifier_does(server: Server, client_python: str) -> None:
    snippets = [{"id": "genuine", "code": GENUINE_FILE}]
    snippets += [{"id": name, "code": code} for name, (code, _) in ATTACKS.items()]
    snippets += [{"id": name, "code": code} for name, code in LEAN_ERRORS.items()]
    got = run_kimina(client_python, {"url": server.url, "snippets": snippets, "timeout": 60, "health": True})

    assert got["health"] == {"status": "ok"}
    results = got["results"]
    assert set(results) == {s["id"] for s in snippets}
    assert results["genuine"]["status"] == "valid" and results["genuine"]["valid"], results["genuine"]
    for name, (_, reason) in ATTACKS.items():
        result = results[name]
        # an audited rejection is an error message naming the reason: the client's is_valid is false
        assert not result["valid"] and result["status"] == "lean_error", (name, result)
        assert any(m.startswith("mathagent rejected this proof (") and reason in m for m in result["messages"]), (
            name,
            result,
        )
    for name in LEAN_ERRORS:
        result = results[name]
        assert not result["valid"] and result["status"] == "lean_error", (name, result)
        # Lean's own messages, nothing added
        assert "error" in result["severities"] and not any(
            m.startswith("mathagent rejected") for m in result["messages"]
        ), result
    assert any("Type mismatch" in m for m in results["type_error"]["messages"])


def test_a_runaway_proof_is_the_clients_timeout(server: Server, client_python: str) -> None:
    snippets = [{"id": "runaway", "code": RUNAWAY_FILE}, {"id": "genuine", "code": GENUINE_FILE}]
    got = run_kimina(client_python, {"url": server.url, "snippets": snippets, "timeout": 3})
    runaway = got["results"]["runaway"]
    assert runaway["status"] == "timeout_error" and "timed out" in runaway["error"], runaway
    assert got["results"]["genuine"]["status"] == "valid"


def test_the_async_client_and_the_legacy_endpoint(server: Server, client_python: str) -> None:
    exit_trick = ATTACKS["exit"][0]
    job = {
        "url": server.url,
        "timeout": 60,
        "async_snippets": [{"id": "genuine", "code": GENUINE_FILE}, {"id": "exit", "code": exit_trick}],
        "legacy": [
            {"custom_id": 1, "proof": GENUINE_FILE},
            {"custom_id": "exit", "code": exit_trick},
            {"custom_id": "type_error", "proof": TYPE_ERROR_FILE},
        ],
    }
    got = run_kimina(client_python, job)
    assert got["async_results"]["genuine"]["status"] == "valid"
    assert got["async_results"]["exit"]["status"] == "lean_error"
    assert got["legacy"]["1"]["valid"] and got["legacy"]["1"]["time"] is not None
    assert not got["legacy"]["exit"]["valid"] and not got["legacy"]["type_error"]["valid"]


# ---------------------------------------------------------------- --tasks: the statement each snippet must prove

SORRY_STATEMENT = "theorem two_eq_four : Eq two four :="
TASK_ATTACKS = {
    # every file-level attack on the statement or header from tests/test_soundness.py and test_verifier.py
    "renamed": (
        PRELUDE_HEADER + STATEMENT.replace("two_add_two", "two_add_two'") + " Eq.refl _\n",
        "statement_changed",
    ),
    "weakened": (PRELUDE_HEADER + "theorem two_add_two : Eq four four := Eq.refl _\n", "statement_changed"),
    "omitted": (PRELUDE_HEADER + "theorem other : Eq two two := Eq.refl two\n", "statement_changed"),
    "lemma_first": (
        PRELUDE_HEADER + "theorem before : Eq two two := Eq.refl two\n" + STATEMENT + " Eq.refl _\n",
        "statement_changed",
    ),
    "header_redefined": (
        PRELUDE_HEADER.replace("noncomputable def ten", "noncomputable def ten' : N := two\nnoncomputable def ten")
        + STATEMENT
        + " Eq.refl _\n",
        "header_changed",
    ),
    "no_header": (STATEMENT + " Eq.refl _\n", "header_changed"),
    "header_line_continued": (
        PRELUDE_HEADER.rstrip("\n") + " namespace M noncomputable def four : N := two\n" + STATEMENT + " Eq.refl _\n",
        "header_changed",
    ),
    "glued": (PRELUDE_HEADER.rstrip("\n") + "x\n" + STATEMENT + " Eq.refl _\n", "header_changed"),
    "block_comment": (PRELUDE_HEADER.rstrip("\n") + " /- hidden\n-/ " + STATEMENT + " Eq.refl _\n", "header_changed"),
    "exit": (PRELUDE_HEADER + STATEMENT + " Eq.refl _\n#exit\n", "banned:#exit"),
    "smuggled_axiom": (PRELUDE_HEADER + STATEMENT + " ax\naxiom ax : Eq two four\n", "banned:axiom"),
}


@pytest.fixture(scope="module")
def task_server(lean: LeanToolchain, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("serve-tasks")
    tasks = folder / "tasks.jsonl"
    rows = [{"id": "two_add_two", "formal_statement": STATEMENT}, {"id": "cheat", "formal_statement": SORRY_STATEMENT}]
    tasks.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with serving(lean, folder, "--workers", "2", "--no-cache", "--tasks", str(tasks)) as live:
        yield live


def test_with_tasks_a_snippet_must_prove_the_statement_its_id_names(task_server: Server, client_python: str) -> None:
    snippets = [
        {"id": "two_add_two", "code": PRELUDE_HEADER + STATEMENT + " Eq.refl _\n"},
        {"id": "two_add_two#2", "code": PRELUDE_HEADER + STATEMENT + "\n  Eq.refl (N.add two two)\n"},
        {"id": "cheat#sorry", "code": PRELUDE_HEADER + SORRY_STATEMENT + " sorryAx _ Bool.false\n"},
        {"id": "cheat#synthetic", "code": PRELUDE_HEADER + SORRY_STATEMENT + " sorryAx _ Bool.true\n"},
        {"id": "cheat#axiom", "code": PRELUDE_HEADER + SORRY_STATEMENT + " False.elim cheat\n"},
        {"id": "not_a_task", "code": GENUINE_FILE},
    ]
    snippets += [{"id": f"two_add_two#{name}", "code": code} for name, (code, _) in TASK_ATTACKS.items()]
    got = run_kimina(client_python, {"url": task_server.url, "snippets": snippets, "timeout": 60})
    results = got["results"]
    assert results["two_add_two"]["status"] == "valid", results["two_add_two"]
    assert results["two_add_two#2"]["status"] == "valid", results["two_add_two#2"]
    # a sorry is the client's `sorry` status (Lean's warning, and `sorries`), as kimina reports it; a synthetic
    # sorry raises no warning in Lean, yet is reported the same
    for name in ("cheat#sorry", "cheat#synthetic"):
        assert results[name]["status"] == "sorry" and results[name]["sorries"] >= 1, results[name]
        assert not results[name]["valid"]
        assert any("mathagent rejected this proof (sorry)" in m for m in results[name]["messages"])
    assert results["cheat#axiom"]["status"] == "lean_error"
    assert any("axiom:cheat" in m for m in results["cheat#axiom"]["messages"])
    assert results["not_a_task"]["status"] == "server_error" and "names no task" in results["not_a_task"]["error"]
    for name, (_, reason) in TASK_ATTACKS.items():
        result = results[f"two_add_two#{name}"]
        assert not result["valid"] and result["status"] == "lean_error", (name, result)
        assert any(f"({reason}" in m or f", {reason}" in m for m in result["messages"]), (name, result)


def test_tasks_file_errors_stop_the_server_with_one_line(lean: LeanToolchain, tmp_path: Path) -> None:
    import subprocess
    import sys

    bad = tmp_path / "tasks.jsonl"
    bad.write_text('{"id": "a"}\n')
    proc = subprocess.run(
        [sys.executable, "-m", "mathagent", "serve", "--port", "0", "--lean", str(lean.lean), "--tasks", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode == 2, proc.stderr
    assert f"{bad}:1: a task needs `id` and a non-empty `formal_statement`" in proc.stderr
