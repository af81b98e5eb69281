"""Attacks on "verified", class by class, in every input mode, against real Lean.

Each class has both directions: the attack is rejected, and the genuine
neighbour (the same shape, honest) is verified. Every case runs on both
pools (the `options` fixture). Where the text audit stops an attack first,
a second test switches the audit off to show that Lean's own view of the
file (its declarations, the kernel's statement check, the axiom reports)
rejects it too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import time
from pathlib import Path

import pytest

from conftest import PRELUDE_HEADER, ROOT
from mathagent.verify import verifier as verifier_module
from mathagent.verify.messages import parse_output
from mathagent.verify.tasks import VerifyTask
from mathagent.verify.toolchain import LeanToolchain
from mathagent.verify.verdict import Verdict
from mathagent.verify.verifier import Verifier, VerifyOptions, verify_tasks

STATEMENT = "theorem two_add_two : Eq (N.add two two) four :="
GENUINE = STATEMENT + " Eq.refl _\n"
# A whole-file fixture: the prelude header without its axioms (whole files may not declare any).
AXIOM_FREE = (
    PRELUDE_HEADER.replace("axiom cheat : False\n", "")
    .replace("axiom sorryAx", "-- no sorryAx")
    .replace("axiom propext", "-- no propext")
)
# In whole-file tests that switch the text audit off, the file declares its own sorryAx.
WITH_SORRY = AXIOM_FREE + "axiom sorryAx (α : Sort u) (synthetic : Bool) : α\n"


def check(lean: LeanToolchain, options: VerifyOptions, **task: str) -> Verdict:
    [verdict] = verify_tasks(lean, options, [VerifyTask(id="t", **task)])
    return verdict


@pytest.fixture
def no_text_audit(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if the text audit had been fooled: only Lean's view remains."""
    monkeypatch.setattr(verifier_module, "find_banned", lambda *a, **k: [])


# ---------------------------------------------------------------- 1. the header line in full_code


@pytest.mark.parametrize(
    "full_code",
    [
        # the header's last line goes on with a namespace that redefines `four`
        PRELUDE_HEADER.rstrip("\n") + " namespace M noncomputable def four : N := N.s (N.s (N.s N.z))\n" + GENUINE,
        # text glued to the last header token
        PRELUDE_HEADER.rstrip("\n") + "x\n" + GENUINE,
        # a block comment opened on the header's line
        PRELUDE_HEADER.rstrip("\n") + " /- hidden\n-/ " + GENUINE,
    ],
    ids=["continued", "glued", "block-comment"],
)
def test_the_header_line_may_not_go_on(lean: LeanToolchain, options: VerifyOptions, full_code: str) -> None:
    v = check(lean, options, formal_statement=STATEMENT, full_code=full_code)
    assert v.verdict == "rejected" and v.reasons == ["header_changed"], v


def test_a_header_ending_in_a_comment(lean: LeanToolchain, options: VerifyOptions) -> None:
    header = PRELUDE_HEADER + "-- note: x y"
    genuine = check(lean, options, header=header, formal_statement=STATEMENT, full_code=header + "\n" + GENUINE)
    assert genuine.verified, genuine
    # the comment's continuation on a new line would be live code: it is not the statement
    attack = header.replace("x y", "x\nnamespace M end M") + "\n" + GENUINE
    v = check(lean, options, header=header, formal_statement=STATEMENT, full_code=attack)
    assert v.verdict == "rejected" and v.reasons == ["statement_changed"], v


def test_a_line_comment_after_the_header_is_fine(lean: LeanToolchain, options: VerifyOptions) -> None:
    full = PRELUDE_HEADER.rstrip("\n") + "  -- end of header\n" + GENUINE
    assert check(lean, options, formal_statement=STATEMENT, full_code=full).verified


def test_what_runs_is_the_tasks_header_not_the_submitted_copy(lean: LeanToolchain, options: VerifyOptions) -> None:
    # spacing in the copy differs; the verifier runs the task's own header text regardless
    spaced = PRELUDE_HEADER.replace("noncomputable def four", "noncomputable   def four")
    assert check(lean, options, formal_statement=STATEMENT, full_code=spaced + GENUINE).verified


# ---------------------------------------------------------------- 2. comments and names as Lean lexes them

DOC_TRICK = '/--/ " -/\naxiom propext : False -- "\ntheorem t : False := propext\n'


def test_a_doc_comment_cannot_hide_an_axiom(lean: LeanToolchain, options: VerifyOptions) -> None:
    v = check(lean, options, full_code=AXIOM_FREE + DOC_TRICK)
    assert v.verdict == "rejected" and v.reasons == ["banned:axiom"], v
    v = check(lean, options, formal_statement="theorem t : False :=", proof=" x\n" + DOC_TRICK.replace("propext", "x"))
    assert v.verdict == "rejected" and "banned:axiom" in v.reasons, v


def test_lean_sees_the_axiom_even_if_the_text_audit_were_fooled(
    lean: LeanToolchain, options: VerifyOptions, no_text_audit: None
) -> None:
    v = check(lean, options, full_code=AXIOM_FREE + DOC_TRICK)
    assert v.verdict == "rejected" and v.reasons == ["fake_axiom"], v


def test_comments_that_really_end_leave_a_genuine_proof_alone(lean: LeanToolchain, options: VerifyOptions) -> None:
    proof = ' Eq.refl _\n/-- a doc comment with /- nesting -/ and "quotes" -/\ntheorem more : Eq two two := Eq.refl _\n'
    assert check(lean, options, formal_statement=STATEMENT, proof=proof).verified


def test_lean_identifier_characters(lean: LeanToolchain, options: VerifyOptions) -> None:
    # ℃ is an identifier character to Lean (not to Python's \w): `axiom℃` is a name, not a command
    v = check(lean, options, formal_statement=STATEMENT, proof=" let axiom℃ := two; Eq.refl _")
    assert v.verified, v


# ---------------------------------------------------------------- 3. quoted names and other spellings


@pytest.mark.parametrize(
    ("proof", "reason"),
    [
        (" Eq.refl _\nset_option «debug».skipKernelTC true", "banned:set_option debug"),
        (" Eq.refl _\nset_option «bootstrap».inductiveCheckResultingUniverse false", "banned:set_option bootstrap"),
        (" Eq.refl _\n@[«implemented_by» two] noncomputable def g : N := two", "banned:elaborator attribute"),
        (" Eq.refl _\nattribute [init] two", "banned:elaborator attribute"),
        (" Eq.refl _\nattribute [command_elab] two", "banned:elaborator attribute"),
        (' Eq.refl _\nnoncomputable def s := include_str "x"', "banned:include_str"),
        (" Eq.refl _\nopen Lean Elab Command", "banned:meta programming"),
        (" Eq.refl _\nset_option warn.sorry false", "banned:set_option warn"),
        (" Eq.refl _\nset_option doc.verso true", "banned:set_option doc"),
    ],
)
def test_quoted_and_indirect_spellings_are_banned(
    lean: LeanToolchain, options: VerifyOptions, proof: str, reason: str
) -> None:
    v = check(lean, options, formal_statement=STATEMENT, proof=proof)
    assert v.verdict == "rejected" and reason in v.reasons, v
    assert v.sandbox == "not run"


def test_harmless_options_and_quoted_names_are_fine(lean: LeanToolchain, options: VerifyOptions) -> None:
    proof = " Eq.refl _\nset_option maxRecDepth 1000 in\ntheorem «debug» : Eq two two := Eq.refl _\n"
    assert check(lean, options, formal_statement=STATEMENT, proof=proof).verified


# ---------------------------------------------------------------- 4. whole files: every declaration, from Lean


def test_a_namespace_opened_mid_line_is_followed(
    lean: LeanToolchain, options: VerifyOptions, no_text_audit: None
) -> None:
    hidden = (
        WITH_SORRY
        + "theorem x : Eq two two := Eq.refl _ namespace A theorem t : Eq two four := sorryAx _ Bool.true end A\n"
    )
    v = check(lean, options, full_code=hidden)
    assert v.verdict == "rejected" and v.reasons == ["sorry"], v
    # (the file's own `axiom sorryAx` is reported too; what matters is that `A.t` is checked)
    assert "`A.t`" in v.message and "`x`" not in v.message, v


def test_private_theorems_are_checked_by_their_own_name(
    lean: LeanToolchain, options: VerifyOptions, no_text_audit: None
) -> None:
    source = WITH_SORRY + (
        "namespace B\ntheorem p : Eq two two := Eq.refl _\nend B\n"
        "namespace A\nprivate theorem p : Eq two four := sorryAx _ Bool.true\nend A\nopen B\n"
    )
    v = check(lean, options, full_code=source)
    assert v.verdict == "rejected" and v.reasons == ["sorry"], v
    assert "`A.p`" in v.message and "`B.p`" not in v.message, v


@pytest.mark.parametrize("kind", ["noncomputable def", "noncomputable abbrev", "theorem"])
def test_every_kind_of_declaration_is_checked(
    lean: LeanToolchain, options: VerifyOptions, no_text_audit: None, kind: str
) -> None:
    # a synthetic sorry (`Bool.true`) raises no warning: only the axiom check sees it
    v = check(lean, options, full_code=WITH_SORRY + f"{kind} bad : Eq two four := sorryAx _ Bool.true\n")
    assert v.verdict == "rejected" and v.reasons == ["sorry"], v
    assert "`bad`" in v.message, v


def test_genuine_whole_files_in_every_namespace_shape(lean: LeanToolchain, options: VerifyOptions) -> None:
    source = AXIOM_FREE + (
        "namespace A.B\ntheorem q : Eq two two := Eq.refl _\nend B\nend A\n"
        "noncomputable section\ntheorem s : Eq two two := Eq.refl _\nend\n"
        "namespace «x y»\ntheorem t : Eq two two := Eq.refl _\nend «x y»\n"
        "theorem foo' : Eq two two := Eq.refl _\n"
        "namespace C private theorem p : Eq two two := Eq.refl _ end C\n"
    )
    v = check(lean, options, full_code=source)
    assert v.verified, v


# ---------------------------------------------------------------- 5. allowed axioms must be the real ones

FAKE_PROPEXT_HEADER = PRELUDE_HEADER.replace(
    "axiom propext {a b : Prop} : (a → b) → (b → a) → Eq a b", "axiom propext {P : Prop} : P"
)


def test_a_header_declaring_an_allowed_axiom_name(lean: LeanToolchain, options: VerifyOptions) -> None:
    task = {"header": FAKE_PROPEXT_HEADER, "formal_statement": "theorem t : Eq two four :=", "proof": " propext"}
    v = check(lean, options, **task)
    assert v.verdict == "rejected" and v.reasons == ["header_axiom"], v
    # a proof that does not touch it is fine under the same header
    ok = check(lean, options, header=FAKE_PROPEXT_HEADER, formal_statement=STATEMENT, proof=" Eq.refl _")
    assert ok.verified, ok
    # and a user who explicitly trusts the header's declaration gets what they asked for
    assert check(lean, dataclasses.replace(options, allow_axioms=("propext",)), **task).verified


@pytest.mark.parametrize(
    ("module", "expected"), [("Init.Canon", "verified"), ("Canon", "rejected"), ("Fake", "rejected")]
)
def test_an_imported_allowed_axiom_must_be_init_s_with_its_real_type(
    lean_with_modules: LeanToolchain, options: VerifyOptions, module: str, expected: str
) -> None:
    # `Canon` is `Init.Canon`'s text outside Init: the right name and type, the wrong module
    toolchain = lean_with_modules
    header = f"prelude\nimport {module}\n"
    proof = " propext (Iff.intro (fun h => h) (fun h => h))" if module != "Fake" else " propext"
    v = check(toolchain, options, header=header, formal_statement="theorem t {a : Prop} : Eq a a :=", proof=proof)
    assert v.verdict == expected, v
    if expected == "rejected":
        assert v.reasons == ["fake_axiom"], v
        if module == "Canon":
            assert "`propext` is declared in `Canon`, not in Lean's own `Init`" in v.message, v
    else:
        assert v.axioms == ["propext"]


# A submission's own coercion from the impostor's type to the real one: a `#check` is only
# elaborated, and the elaborator mended the mismatch with it (found by red-teaming).
COERCION = """
universe u1 v1
@[reducible] def outParam (α : Sort u1) : Sort u1 := α
class CoeFun (α : Sort u1) (γ : outParam (α → Sort v1)) where
  coe : (f : α) → γ f
class CoeT (α : Sort u1) (_ : α) (β : Sort v1) where
  coe : β
noncomputable instance fakeCoe : CoeT (∀ {a : Prop}, a) @propext (∀ {a b : Prop}, Iff a b → Eq a b) :=
  ⟨fun {_ _} _ => propext⟩
"""


@pytest.mark.parametrize("mode", ["proof", "full_code", "whole file"])
def test_a_coercion_in_the_submission_does_not_pass_an_impostor_for_an_allowed_axiom(
    lean_with_modules: LeanToolchain, options: VerifyOptions, mode: str
) -> None:
    header = "prelude\nimport Fake\n"
    theorem = "theorem x : False :="
    if mode == "proof":
        task = {"header": header, "formal_statement": theorem, "proof": " @propext False\n" + COERCION}
    elif mode == "full_code":
        task = {
            "header": header,
            "formal_statement": theorem,
            "full_code": f"{header}{theorem} @propext False\n{COERCION}",
        }
    else:
        task = {"full_code": f"{header}{theorem} @propext False\n{COERCION}"}
    v = check(lean_with_modules, options, **task)
    assert v.verdict == "rejected", v
    assert v.reasons == (["checks_missing"] if mode == "whole file" else ["fake_axiom"]), v


def test_the_imports_own_axioms_are_checked_where_the_block_ends_cleanly(
    lean_with_modules: LeanToolchain, options: VerifyOptions
) -> None:
    # after the last import: a comment closed on that line is fine; one left open, or a
    # command on the same line, leaves no line of its own for the check, and an imported
    # allowed axiom then cannot be identified
    proof = " propext (Iff.intro (fun h => h) (fun h => h))"
    statement = "theorem t {a : Prop} : Eq a a :="
    for header, expected in [
        ("prelude\nimport Init.Canon -- the canon\n", "verified"),
        ("prelude\nimport Init.Canon /- the canon -/\n", "verified"),
        ("prelude\nimport Init.Canon /- the\ncanon -/\n", "rejected"),
        ("prelude\nimport Init.Canon /- a /- nested -/ comment -/\n", "verified"),
        ("prelude\nimport Init.Canon /- a /- nested -/ comment\n-/\n", "rejected"),
        ("prelude\nimport Init.Canon -- a line comment with /- in it\n", "verified"),
        ("prelude\nimport Init.Canon /-- a doc comment -/\n", "rejected"),
        ("prelude\nimport Init.Canon\n/- a comment that\nspans lines -/\n", "verified"),
    ]:
        v = check(lean_with_modules, options, header=header, formal_statement=statement, proof=proof)
        assert v.verdict == expected, (header, v)
        if expected == "rejected":
            assert v.reasons == ["fake_axiom"], v


# ---------------------------------------------------------------- 6. bounded time on adversarial text


@pytest.mark.slow
@pytest.mark.parametrize(
    "filler",
    ["@[", "/-", "«", '"\\', "'\"", "/--/", "a.", "-/", 'r#"', "{", "\r", "\t"],
)
def test_a_megabyte_of_adversarial_text_is_judged_within_the_time_limit(lean: LeanToolchain, filler: str) -> None:
    options = VerifyOptions(workers=1, timeout_s=5, memory_mb=2048, default_header=PRELUDE_HEADER, pool="cold")
    proof = " Eq.refl _\n" + filler * (1_000_000 // len(filler))
    v = check(lean, options, formal_statement=STATEMENT, proof=proof)
    assert v.verdict in ("rejected", "timeout"), v
    assert v.time_s <= options.timeout_s + 3, v


def test_many_comments_before_the_imports_of_a_whole_file(lean: LeanToolchain, options: VerifyOptions) -> None:
    source = "/- -/ " * 5000 + "\n" + AXIOM_FREE.replace("prelude\n", "", 1)
    v = check(lean, dataclasses.replace(options, timeout_s=10), full_code="prelude\n" + source)
    assert v.verdict in ("rejected", "verified", "error"), v
    assert v.time_s < 10


def test_oversized_submissions_are_rejected_unread(lean: LeanToolchain, options: VerifyOptions) -> None:
    v = check(
        lean, dataclasses.replace(options, max_bytes=1000), formal_statement=STATEMENT, proof=" Eq.refl _" + " " * 2000
    )
    assert v.verdict == "rejected" and v.reasons == ["too_large"] and v.sandbox == "not run"


@pytest.mark.slow
def test_a_slow_audit_does_not_hold_up_other_checks(lean: LeanToolchain) -> None:
    options = VerifyOptions(workers=2, timeout_s=20, memory_mb=2048, default_header=PRELUDE_HEADER, pool="cold")
    big = VerifyTask(id="big", formal_statement=STATEMENT, proof=" Eq.refl _\n" + "@[" * 500_000)
    small = VerifyTask(id="small", formal_statement=STATEMENT, proof=" Eq.refl _")

    async def go() -> list[str]:
        order: list[str] = []
        async with Verifier(lean, options) as verifier:

            async def one(task: VerifyTask) -> None:
                await verifier.verify(task)
                order.append(task.id)

            first = asyncio.ensure_future(one(big))
            await asyncio.sleep(0)  # the big audit has started
            await asyncio.gather(first, one(small))
        return order

    assert asyncio.run(go()) == ["small", "big"]


# ---------------------------------------------------------------- 7. output that contains U+2028


def test_a_line_separator_in_a_lean_message_is_kept(lean: LeanToolchain, options: VerifyOptions) -> None:
    v = check(lean, options, formal_statement=STATEMENT, proof=" «x\u2028y»")
    assert v.verdict == "rejected" and v.reasons == ["lean_error"], v
    assert any("\u2028" in d.message for d in v.diagnostics)
    assert "\u2028" not in v.to_json() and "\\u2028" in v.to_json()
    assert json.loads(v.to_json())["diagnostics"] == json.loads(json.dumps(dataclasses.asdict(v)))["diagnostics"]


def test_lean_output_is_split_on_newlines_only() -> None:
    line = json.dumps(
        {"severity": "error", "pos": {"line": 3, "column": 0}, "data": "a\u2028b\u0085c"}, ensure_ascii=False
    )
    [message] = parse_output(line + "\n").messages
    assert message.text == "a\u2028b\u0085c"


@pytest.mark.slow
def test_cli_json_output_escapes_line_separators(lean: LeanToolchain, tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"id": "u", "formal_statement": STATEMENT, "proof": " «x\u2028y»"}) + "\n")
    proc = subprocess.run(
        [
            "python",
            "-m",
            "mathagent",
            "verify",
            "-i",
            str(rows),
            "--header-file",
            str(ROOT / "examples" / "prelude_header.lean"),
            "--json",
            "--no-cache",
            "--lean",
            str(lean.lean),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    assert "\u2028" not in proc.stdout
    [row] = [json.loads(line) for line in proc.stdout.split("\n") if line.strip()]
    assert row["reasons"] == ["lean_error"] and "\u2028" in row["diagnostics"][0]["message"]


# ---------------------------------------------------------------- 8. genuine proofs that used to be rejected


@pytest.mark.parametrize(
    ("statement", "proof"),
    [
        ("theorem foo' : Eq two two :=", " Eq.refl _"),
        ("theorem N.addtt (n : N) : Eq (add n N.z) n :=", " Eq.refl _"),
        ("open N in\ntheorem addtt2 (n : N) : Eq (add n N.z) n :=", " Eq.refl _"),
        ("theorem t.{v} (α : Sort v) (a : α) : Eq a a :=", " Eq.refl a"),
        (STATEMENT + " -- the proof goes here", " Eq.refl _"),
        (STATEMENT, " Eq.refl _\nset_option trace.Elab.command true"),
        ("private theorem pv : Eq two two :=", " Eq.refl _"),
        ("theorem «x y» : Eq two two :=", " Eq.refl _"),
        ("/-- docs -/\n@[simp] theorem attributed : Eq two two :=", " Eq.refl _"),
    ],
    ids=["prime", "dotted", "open-in", "universe", "comment", "trace", "private", "quoted", "attributes"],
)
def test_genuine_proofs_of_every_shape_are_verified(
    lean: LeanToolchain, options: VerifyOptions, statement: str, proof: str
) -> None:
    v = check(lean, options, formal_statement=statement, proof=proof)
    assert v.verified, v
    full = check(lean, options, formal_statement=statement, full_code=PRELUDE_HEADER + statement + "\n" + proof + "\n")
    assert full.verified, full


def test_a_dotted_statement_is_still_the_asked_one(lean: LeanToolchain, options: VerifyOptions) -> None:
    # the reference is elaborated inside `namespace N` as Lean does for `theorem N.t`:
    # a weaker statement under the same name is caught by the kernel check
    weak = PRELUDE_HEADER + "theorem N.addtt (n : N) : Eq n n := Eq.refl _\n"
    v = check(lean, options, formal_statement="theorem N.addtt (n : N) : Eq (add n N.z) n :=", full_code=weak)
    assert v.verdict == "rejected", v


# ---------------------------------------------------------------- attacks that need Init or Mathlib

# Whole files that prove `False` with tools only a Lean with Init has.
INIT_ATTACKS = {
    "interpolation": 'def s : String := s!"{ \'"\' }" axiom hidden : False -- "\ntheorem u : False := hidden\n',
    "guard_msgs": "/-- warning: declaration uses 'sorry' -/\n#guard_msgs in\ntheorem u : False := sorry\n",
    "implemented_by": (
        "def trueImpl (_ : Unit) : Bool := true\n@[implemented_by trueImpl] def lies (_ : Unit) : Bool := false\n"
        "theorem l : lies () = true := by native_decide\ntheorem u : False := Bool.noConfusion (l.symm.trans rfl)\n"
    ),
    "metaprogram": (
        "open Lean Elab Command in\nrun_cmd elabCommand (← `(axiom hidden : False))\ntheorem u : False := hidden\n"
    ),
    "eval": "#eval (pure () : IO Unit)\ntheorem u : False := sorry\n",
}


@pytest.mark.parametrize("attack", list(INIT_ATTACKS))
def test_init_attacks_are_rejected_by_the_text_audit_on_any_lean(
    lean: LeanToolchain, options: VerifyOptions, attack: str
) -> None:
    v = check(lean, options, full_code=INIT_ATTACKS[attack])
    assert v.verdict == "rejected" and v.sandbox == "not run", v
    assert v.reasons and all(r.startswith("banned:") for r in v.reasons), v


def _full_lean() -> LeanToolchain | None:
    from mathagent.config import load_settings
    from mathagent.errors import ToolchainError
    from mathagent.project import find_project
    from mathagent.verify.toolchain import find_lean

    try:
        toolchain = find_lean(load_settings(), find_project(ROOT))
    except ToolchainError:
        return None
    return None if toolchain.prelude_only else toolchain


FULL_LEAN = _full_lean()


@pytest.mark.skipif(
    FULL_LEAN is None, reason="needs a Lean with Init (an elan toolchain); only the prelude-only Lean is here"
)
@pytest.mark.parametrize("attack", list(INIT_ATTACKS))
@pytest.mark.parametrize("pool", ["cold", "warm"])
def test_init_attacks_are_rejected_by_lean_itself(attack: str, pool: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert FULL_LEAN is not None
    monkeypatch.setattr(verifier_module, "find_banned", lambda *a, **k: [])
    options = VerifyOptions(workers=1, timeout_s=120, memory_mb=8192, default_header="", pool=pool)
    v = check(FULL_LEAN, options, full_code=INIT_ATTACKS[attack])
    assert not v.verified, v


def test_time_is_reported_for_early_verdicts(lean: LeanToolchain, options: VerifyOptions) -> None:
    started = time.monotonic()
    v = check(lean, options, formal_statement=STATEMENT, proof=" Eq.refl _\n#exit")
    assert 0 <= v.time_s <= time.monotonic() - started


# ---------------------------------------------------------------- the same through the command line


@pytest.mark.slow
@pytest.mark.parametrize("pool", ["cold", "warm"])
def test_the_cli_gives_the_same_verdicts(lean: LeanToolchain, tmp_path: Path, pool: str) -> None:
    rows = [
        {
            "id": "continued",
            "formal_statement": STATEMENT,
            "full_code": PRELUDE_HEADER.rstrip("\n") + " namespace M noncomputable def four : N := two\n" + GENUINE,
        },
        {"id": "genuine_full", "formal_statement": STATEMENT, "full_code": PRELUDE_HEADER + GENUINE},
        {"id": "quoted", "formal_statement": STATEMENT, "proof": " Eq.refl _\nset_option «debug».skipKernelTC true"},
        {
            "id": "impostor",
            "header": FAKE_PROPEXT_HEADER,
            "formal_statement": "theorem t : Eq two four :=",
            "proof": " propext",
        },
        {"id": "dotted", "formal_statement": "theorem N.addtt (n : N) : Eq (add n N.z) n :=", "proof": " Eq.refl _"},
        {"id": "doc_trick", "full_code": AXIOM_FREE + DOC_TRICK},
        {
            "id": "whole_genuine",
            "full_code": AXIOM_FREE + "namespace A.B\ntheorem q : Eq two two := Eq.refl _\nend B\nend A\n",
        },
    ]
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text("".join(json.dumps(r) + "\n" for r in rows))
    proc = subprocess.run(
        [
            "python",
            "-m",
            "mathagent",
            "verify",
            "-i",
            str(tasks),
            "--header-file",
            str(ROOT / "examples" / "prelude_header.lean"),
            "--json",
            "--no-cache",
            "--pool",
            pool,
            "--lean",
            str(lean.lean),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    got = {row["id"]: row for row in map(json.loads, filter(None, proc.stdout.split("\n")))}
    assert proc.returncode == 1, proc.stderr
    assert got["continued"]["reasons"] == ["header_changed"]
    assert got["genuine_full"]["verdict"] == "verified"
    assert got["quoted"]["reasons"] == ["banned:set_option debug"]
    assert got["impostor"]["reasons"] == ["header_axiom"]
    assert got["dotted"]["verdict"] == "verified"
    assert got["doc_trick"]["reasons"] == ["banned:axiom"]
    assert got["whole_genuine"]["verdict"] == "verified"


def test_an_example_cannot_hide_a_synthetic_sorry_in_a_whole_file(lean: LeanToolchain, options: VerifyOptions) -> None:
    # an `example` leaves no constant to audit, and `sorryAx _ true` raises no warning:
    # in a whole file, writing `sorryAx` by hand is banned
    source = WITH_SORRY.replace("axiom sorryAx", "-- axiom sorryAx") + "example : Eq two four := sorryAx _ Bool.true\n"
    v = check(lean, options, full_code=source)
    assert v.verdict == "rejected" and v.reasons == ["banned:sorryAx"], v
    honest = check(lean, options, full_code=AXIOM_FREE + "example : Eq two two := Eq.refl _\n")
    assert honest.verified, honest
