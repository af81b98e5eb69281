"""Banned commands are found where Lean would read them, and only there."""

from __future__ import annotations

import pytest

from mathagent.verify.banned import find_banned


@pytest.mark.parametrize(
    ("source", "command"),
    [
        ("axiom cheat : False", "axiom"),
        ("theorem t : True := by trivial\n#exit", "#exit"),
        ('#eval IO.println "hi"', "#eval"),
        ("set_option debug.skipKernelTC true in\ntheorem t : False := sorry", "set_option debug"),
        ("#guard_msgs in\n#check 1", "#guard_msgs"),
        ("run_cmd pure ()", "run_cmd"),
        ("theorem t : True := by run_tac pure ()", "run_tac"),
        ("run_elab pure ()", "run_elab"),
        ("theorem t : True := by_elab pure default", "by_elab"),
        ('elab "x" : term => pure default', "elab"),
        ('macro "x" : term => `(1)', "macro"),
        ("macro_rules | `(x) => `(1)", "macro_rules"),
        ('syntax "x" : term', "syntax"),
        ('notation "⊥" => False', "notation"),
        ('infixl:65 " +\' " => HAdd.hAdd', "infixl"),
        ("local instance : Inhabited False := sorry", "local instance"),
        ("attribute [local instance] foo", "local instance"),
        ("@[implemented_by foo] def bar : Nat := 1", "implemented_by"),
        ('@[extern "c_fn"] opaque f : Nat → Nat', "extern"),
        ("theorem t : 2 + 2 = 4 := by native_decide", "native_decide"),
        ("unsafe def f : Nat := 1", "unsafe"),
        ("initialize pure ()", "initialize"),
        ("@[command_elab foo] def f : Lean.Elab.Command.CommandElab := fun _ => pure ()", "elaborator attribute"),
        ("open Lean Elab in\ndef x := Lean.Elab.Command.liftTermElabM", "meta programming"),
    ],
)
def test_finds_each_banned_command(source: str, command: str) -> None:
    assert command in [b.command for b in find_banned(source)]


@pytest.mark.parametrize(
    "source",
    [
        "-- axiom cheat : False\ntheorem t : True := trivial",
        "/- #exit -/ theorem t : True := trivial",
        'theorem t : "axiom".length = 5 := rfl',
        "theorem axiom_of_choice_like : True := trivial",
        "theorem t (h : my.axiom) : True := trivial",
        "theorem t : True := by\n  have macro_step : True := trivial\n  exact macro_step",
        "#print axioms foo",
        "theorem t : True := «axiom»",
    ],
)
def test_comments_strings_and_names_are_not_commands(source: str) -> None:
    assert find_banned(source) == []


def test_native_decide_can_be_allowed() -> None:
    assert find_banned("theorem t : 2 + 2 = 4 := by native_decide", allow_native=True) == []


def test_positions_are_lean_style() -> None:
    [hit] = find_banned("theorem t : True := trivial\n  axiom x : False")
    assert (hit.line, hit.column, hit.reason) == (2, 2, "banned:axiom")


@pytest.mark.parametrize(
    ("source", "command"),
    [
        ("set_option «debug».skipKernelTC true", "set_option debug"),
        ("set_option «bootstrap».inductiveCheckResultingUniverse false", "set_option bootstrap"),
        ("set_option warn.sorry false in\ntheorem t : False := sorry", "set_option warn"),
        ("set_option doc.verso true", "set_option doc"),
        ("@[«implemented_by» g] def f : Nat := 1", "elaborator attribute"),
        ("@[simp, «command_elab» x] def f := 1", "elaborator attribute"),
        ("attribute [init] foo", "elaborator attribute"),
        ("attribute [command_elab] foo", "elaborator attribute"),
        ("attribute [local instance] foo", "local instance"),
        ('def s := include_str "secret"', "include_str"),
        ("open Lean Elab Command", "meta programming"),
        ("open Nat _root_.Lean in\ntheorem t : True := trivial", "meta programming"),
        ("#exitfoo", "#exit"),  # Lean reads the longest token it knows: `#exit`
        ("#evalx 1", "#eval"),
        ("#guard 1 == 1", "#guard"),
        ("theorem t : True := 2axiom", "axiom"),  # a number ends before the keyword
        ('def s := s!"{ \'"\' }" axiom hidden : False -- "', "string interpolation"),
        ("theorem t : True := (f ⁻¹'\"') -- \"", "ambiguous lexing"),
        ("theorem t : True := a =-- x", "ambiguous lexing"),
    ],
)
def test_quoted_spelled_and_hidden_forms(source: str, command: str) -> None:
    assert command in [b.command for b in find_banned(source)], find_banned(source)


@pytest.mark.parametrize(
    "source",
    [
        "theorem t : True := «axiom»",
        "set_option maxHeartbeats 400000 in\ntheorem t : True := trivial",
        "set_option trace.Meta.Tactic.simp true in\ntheorem t : True := trivial",
        "#check Nat\n#print axioms foo\n#reduce 1\n#synth Inhabited Nat",
        "theorem t (x : ℝ) : f ⁻¹' s = s := rfl",
        "@[simp] theorem t : True := trivial",
        "theorem axiom℃ : True := trivial",
        "open Nat Real in\ntheorem t : Lean.Omega.foo := x",
        'example : "abc".length = 3 := rfl',
    ],
)
def test_genuine_neighbours_are_not_banned(source: str) -> None:
    assert find_banned(source) == []


def test_banned_scan_is_linear_on_a_megabyte() -> None:
    # one pass over a megabyte of hits: every one reported with its position
    source = "axiom a : False\n" * 60000
    found = find_banned(source)
    assert len(found) == 60000 and (found[-1].line, found[-1].column) == (60000, 0)
