"""The kernel computes `Nat.add` & co. by name: a checked file may not declare them.

A `prelude` file can declare its own `Nat.add` that returns zero; the kernel
still evaluates `Nat.add 2 2` to 4 on big integers, and `False` follows with no
axiom at all. Each case runs against real Lean in both directions (the attack
rejected, an honest neighbour verified), on both pools, through the Python
API, the CLI and both HTTP APIs. The probe at the end asks this Lean which
`Nat` operations its kernel evaluates, so the list cannot silently fall behind.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import NUMERALS, ROOT, bare_lean_accepts
from mathagent.verify.kernel_builtins import KERNEL_BUILTINS
from mathagent.verify.tasks import VerifyTask
from mathagent.verify.toolchain import LeanToolchain
from mathagent.verify.verdict import Verdict
from mathagent.verify.verifier import VerifyOptions, verify_tasks
from serve_support import serving


def _false_from(op: str, a: int, b: int, value: int) -> str:
    """Declarations that prove `False` from a `Nat.{op}` that returns zero while the
    kernel computes `Nat.{op} a b = value` (nonzero) on literals."""
    return (
        f"def Nat.{op} (_n _m : Nat) : Nat := Nat.zero\n"
        f"def a : Nat := {a}\ndef b : Nat := {b}\ndef v : Nat := {value}\n"
        f"theorem viaKernel : Eq (Nat.{op} a b) v := Eq.refl v\n"
        f"theorem viaDelta (n m : Nat) : Eq (Nat.{op} n m) Nat.zero := Eq.refl Nat.zero\n"
        "def isZero (n : Nat) : Prop := Nat.rec (motive := fun _ => Prop) (Eq Nat.zero Nat.zero) (fun _ _ => False) n\n"
        "theorem v_eq_zero : Eq v Nat.zero := Eq.rec (motive := fun x _ => Eq x Nat.zero) (viaDelta a b) viaKernel\n"
        "theorem bad : False := @Eq.rec Nat Nat.zero (fun x _ => isZero x) (Eq.refl Nat.zero) v (Eq.symm v_eq_zero)\n"
    )


# Every whole file below proves `False` under bare Lean (checked first): only the verifier stands in the way.
PRELUDE_ATTACK = "prelude\n" + NUMERALS + _false_from("add", 2, 2, 4)
IMPORTED_ATTACK = "prelude\nimport Nats\n" + _false_from("gcd", 6, 4, 2)
NAMESPACE_ATTACK = "prelude\nimport Nats\nnamespace Nat\n" + _false_from("mul", 3, 4, 12).replace(
    "def Nat.mul", "def mul"
).replace("Nat.mul", "mul")
# Lean's `.ilean` `decls` lists only the first type of a `mutual` block (and no constructor):
# here `Nat` comes second, and `Nat.add` is a constructor the kernel still evaluates on literals.
MUTUAL_ATTACK = (
    "prelude\nuniverse u\n"
    "inductive Eq {α : Sort u} : α → α → Prop where\n  | refl (a : α) : Eq a a\n"
    "inductive False : Prop\ninductive True : Prop where\n  | intro : True\n"
    "inductive lcErased : Type\ninductive lcAny : Type\ninductive lcVoid : Type\n"
    "set_option genCtorIdx false\n"
    "mutual\ninductive Dummy where\n  | d : Dummy\n"
    "inductive Nat where\n  | zero : Nat\n  | succ (n : Nat) : Nat\n  | add (a b : Nat) : Nat\nend\n"
    "class OfNat (α : Type u) (_ : Nat) where\n  ofNat : α\n"
    "instance instOfNatNat (n : Nat) : OfNat Nat n := OfNat.mk n\n"
    "def isAdd (n : Nat) : Prop :=\n"
    "  @Nat.rec (fun _ => Prop) (fun _ => Prop) True False (fun _ _ => False) (fun _ _ _ _ => True) n\n"
    "theorem addIs (a b : Nat) : isAdd (Nat.add a b) := True.intro\n"
    "def two : Nat := 2\ndef four : Nat := 4\n"
    "theorem viaKernel : Eq (Nat.add two two) four := Eq.refl four\n"
    "theorem bad : False :=\n  @Eq.rec Nat (Nat.add two two) (fun x _ => isAdd x) (addIs two two) four viaKernel\n"
)
HONEST_IMPORTED = (
    "prelude\nimport Nats\n"
    "theorem two_add_two : Eq (Nat.add 2 2) 4 := Eq.refl 4\n"
    "noncomputable def Nat.double (n : Nat) : Nat := Nat.add n n\n"
    "theorem double_two : Eq (Nat.double 2) 4 := Eq.refl 4\n"
)
# A file declaring `Nat.gcd` as a private constant: a different name, which the kernel does not know.
HONEST_PRIVATE = (
    "prelude\nimport Nats\nprivate def Nat.gcd (_n _m : Nat) : Nat := Nat.zero\n"
    "theorem t : Eq Nat.zero Nat.zero := Eq.refl _\n"
)


def _assert_builtin_rejected(verdict: Verdict | dict[str, Any], *names: str) -> None:
    row = verdict.to_dict() if isinstance(verdict, Verdict) else verdict
    assert row["verdict"] == "rejected", row
    assert row["reasons"] == ["kernel_builtin"], row
    for name in names:
        assert f"`{name}`" in row["message"], row


def test_the_attacks_really_prove_false_under_bare_lean(lean_with_modules: LeanToolchain, tmp_path: Path) -> None:
    for text in (PRELUDE_ATTACK, IMPORTED_ATTACK, NAMESPACE_ATTACK, MUTUAL_ATTACK, HONEST_IMPORTED, HONEST_PRIVATE):
        bare_lean_accepts(lean_with_modules, tmp_path, text)


def test_whole_files_declaring_kernel_builtins_are_rejected(
    lean_with_modules: LeanToolchain, options: VerifyOptions
) -> None:
    tasks = [
        VerifyTask(id="prelude", full_code=PRELUDE_ATTACK),
        VerifyTask(id="imported", full_code=IMPORTED_ATTACK),
        VerifyTask(id="namespace", full_code=NAMESPACE_ATTACK),
        VerifyTask(id="mutual", full_code=MUTUAL_ATTACK),
        VerifyTask(id="honest", full_code=HONEST_IMPORTED),
        VerifyTask(id="private", full_code=HONEST_PRIVATE),
    ]
    verdicts = {v.id: v for v in verify_tasks(lean_with_modules, options, tasks)}
    _assert_builtin_rejected(verdicts["prelude"], "Nat", "Nat.add")
    _assert_builtin_rejected(verdicts["imported"], "Nat.gcd")
    _assert_builtin_rejected(verdicts["namespace"], "Nat.mul")
    _assert_builtin_rejected(verdicts["mutual"], "Nat")
    assert verdicts["honest"].verdict == "verified", verdicts["honest"]
    assert verdicts["private"].verdict == "verified", verdicts["private"]


def test_a_task_header_declaring_kernel_builtins_is_rejected(
    lean_with_modules: LeanToolchain, options: VerifyOptions
) -> None:
    body, bad = PRELUDE_ATTACK.rsplit("theorem bad : False :=", 1)
    mutual_body, mutual_bad = MUTUAL_ATTACK.rsplit("theorem bad : False :=", 1)
    tasks = [
        VerifyTask(id="header", header=body, formal_statement="theorem bad : False :=", proof=bad),
        VerifyTask(id="mutual", header=mutual_body, formal_statement="theorem bad : False :=", proof=mutual_bad),
        VerifyTask(
            id="honest",
            header="prelude\nimport Nats\n",
            formal_statement="theorem two_add_two : Eq (Nat.add 2 2) 4 :=",
            proof=" Eq.refl 4",
        ),
    ]
    verdicts = {v.id: v for v in verify_tasks(lean_with_modules, options, tasks)}
    _assert_builtin_rejected(verdicts["header"], "Nat.add")
    assert "the task's header declares" in verdicts["header"].message
    _assert_builtin_rejected(verdicts["mutual"], "Nat")
    assert verdicts["honest"].verdict == "verified", verdicts["honest"]


@pytest.mark.parametrize("pool", ["cold", "warm"])
def test_the_cli_rejects_a_file_declaring_nat_add(lean: LeanToolchain, tmp_path: Path, pool: str) -> None:
    attack = tmp_path / "attack.lean"
    attack.write_text(PRELUDE_ATTACK, encoding="utf-8")
    honest = ROOT / "examples" / "two_plus_two.lean"
    proc = subprocess.run(
        [sys.executable, "-m", "mathagent", "verify", str(attack), str(honest), "--json", "--no-cache"]
        + ["--pool", pool, "--lean", str(lean.lean)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 1, proc.stderr  # one rejected
    rows = {row["id"]: row for row in map(json.loads, proc.stdout.splitlines())}
    _assert_builtin_rejected(rows[str(attack)], "Nat.add")
    assert rows[str(honest)]["verdict"] == "verified", rows


@pytest.mark.slow
def test_both_http_apis_reject_a_file_declaring_nat_add(lean: LeanToolchain, tmp_path: Path) -> None:
    honest = (ROOT / "examples" / "two_plus_two.lean").read_text(encoding="utf-8")
    with serving(lean, tmp_path, "--workers", "2", "--no-cache") as server:
        native = httpx.post(
            server.url + "/v1/verify",
            json={"tasks": [{"id": "attack", "full_code": PRELUDE_ATTACK}, {"id": "honest", "full_code": honest}]},
            timeout=300,
        )
        kimina = httpx.post(
            server.url + "/api/check",
            json={"snippets": [{"id": "attack", "code": PRELUDE_ATTACK}, {"id": "honest", "code": honest}]},
            timeout=300,
        )
    assert native.status_code == 200, native.text
    results = {r["id"]: r for r in native.json()["results"]}
    _assert_builtin_rejected(results["attack"], "Nat.add")
    assert results["honest"]["verdict"] == "verified", results
    assert kimina.status_code == 200, kimina.text
    snippets = {r["id"]: r for r in kimina.json()["results"]}
    _assert_builtin_rejected(snippets["attack"]["mathagent"], "Nat.add")
    assert snippets["honest"]["mathagent"]["verdict"] == "verified", snippets


# `Nat` functions a kernel might evaluate on literals, with their value at `a = 6`, `b = 4`.
CANDIDATES = {
    "add": 10, "sub": 2, "mul": 24, "div": 1, "mod": 2, "gcd": 2, "lcm": 12, "pow": 1296,
    "land": 4, "lor": 6, "xor": 2, "shiftLeft": 96, "shiftRight": 0, "min": 4, "max": 6,
    "log": 1, "sqrt": 2, "div2": 3,
}  # fmt: skip


def _kernel_evaluates(lean: LeanToolchain, tmp_path: Path, op: str, declaration: str, claim: str) -> bool:
    source = tmp_path / f"{op}.lean"
    source.write_text("prelude\n" + NUMERALS + declaration + "def a : Nat := 6\ndef b : Nat := 4\n" + claim)
    return subprocess.run([str(lean.lean), str(source)], capture_output=True, text=True, timeout=120).returncode == 0


def test_every_nat_operation_this_kernel_evaluates_is_listed(lean: LeanToolchain, tmp_path: Path) -> None:
    """Ask Lean, not our belief about it: a `Nat.op` defined as a constant that the
    kernel still finds equal to its big-integer value is one it evaluates by name."""
    evaluated = {
        op
        for op, value in CANDIDATES.items()
        if _kernel_evaluates(
            lean,
            tmp_path,
            op,
            f"def Nat.{op} (_n _m : Nat) : Nat := 77\n",
            f"def v : Nat := {value}\ntheorem t : Eq (Nat.{op} a b) v := Eq.refl v\n",
        )
    }
    evaluated |= {
        op
        for op in ("beq", "ble", "blt")
        if _kernel_evaluates(
            lean,
            tmp_path,
            op,
            f"def Nat.{op} (_n _m : Nat) : Bool := Bool.true\n",
            f"theorem t : Eq (Nat.{op} a b) Bool.false := Eq.refl Bool.false\n",  # 6 = 4, 6 <= 4, 6 < 4
        )
    }
    # the probe works (every Lean 4 kernel evaluates these), and nothing it evaluates is missing
    assert {"add", "mul", "gcd", "pow", "shiftLeft", "beq", "ble"} <= evaluated
    assert {f"Nat.{op}" for op in evaluated} <= KERNEL_BUILTINS, evaluated
