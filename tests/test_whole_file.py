"""Whole files: one Lean run when the declarations the file seems to make cover
Lean's own list of them, a second run with Lean's list when they do not, and
checks that report too much on a warm server handed to `lean --json`.

The guess only ever saves a run: whatever it says, every declaration Lean
reports is audited (both directions, both pools, with the guess forced wrong
or empty), and the verdicts are those of the cold path.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable
from typing import Any

import pytest

from conftest import PRELUDE_HEADER
from mathagent.verify import verifier as verifier_module
from mathagent.verify import warm as warm_module
from mathagent.verify.leantext import guess_declarations
from mathagent.verify.tasks import VerifyTask
from mathagent.verify.toolchain import LeanToolchain
from mathagent.verify.verdict import Verdict
from mathagent.verify.verifier import Verifier, VerifyOptions

AXIOM_FREE = "".join(line for line in PRELUDE_HEADER.splitlines(keepends=True) if not line.startswith("axiom "))
WITH_SORRY = AXIOM_FREE + "axiom sorryAx (α : Sort u) (synthetic : Bool) : α\n"
GENUINE = AXIOM_FREE + (
    "namespace A\nprivate theorem p : Eq two two := Eq.refl _\ntheorem q : Eq four four := Eq.refl _\nend A\n"
    "theorem _root_.r : Eq ten ten := Eq.refl _\n"
)
# a synthetic sorry raises no warning: only the audit of `hidden` finds it
HIDDEN_SORRY = (
    WITH_SORRY + "theorem fine : Eq two two := Eq.refl _\ntheorem hidden : Eq two four := sorryAx _ Bool.true\n"
)


# ---------------------------------------------------------------- the guess


@pytest.mark.parametrize(
    ("source", "names"),
    [
        ("theorem a : T := x\nlemma b : T := x\n", [("a",), ("b",)]),
        ("namespace N.M\ndef f := 1\nend N.M\ndef g := 2\n", [("N", "M", "f"), ("g",)]),
        ("namespace N\nsection\nprivate def f := 1\nend\ndef _root_.top := 2\nend N\n", [("N", "f"), ("top",)]),
        (
            "noncomputable section\nabbrev f := 1\nend\nmutual\ninductive E\ninductive O\nend\n",
            [("f",), ("E",), ("O",)],
        ),
        (
            "class inductive C\nstructure S where\ninstance : C := x\ninstance named : C := x\n",
            [("C",), ("S",), ("named",)],
        ),
        ('-- theorem not_this\n/- def nor_this -/\ndef «x.y» := "theorem nor_that"\n', [("x.y",)]),
        ("@[simp] protected theorem Foo.bar : T := x\n", [("Foo", "bar")]),
        ("inductive N where\n  | z : N\n  | s (n : N) : N\n#check N\n| no\n", [("N",), ("N", "z"), ("N", "s")]),
        (
            "structure T where\n  mk' :: (w v : N)\n  x : N := w\n  deriving Repr\ntheorem t : T := x\n",
            [("T",), ("T", "mk'"), ("T", "w"), ("T", "x"), ("t",)],
        ),
        (
            "namespace A\ntheorem t : P :=\n  let rec aux : P := p\n  aux\ndef f := g where g := 1\n"
            "instance i : C where op := 1\nend A\n",
            [("A", "t"), ("A", "t", "aux"), ("A", "f"), ("A", "f", "g"), ("A", "i")],
        ),
    ],
    ids=[
        "keywords",
        "namespaces",
        "private-root",
        "sections-mutual",
        "classes-instances",
        "comments-quotes",
        "modifiers",
        "constructors",
        "fields",
        "helpers",
    ],
)
def test_the_guess_reads_declarations_as_lean_names_them(source: str, names: list[tuple[str, ...]]) -> None:
    assert guess_declarations(source) == names


# Constants a file defines that Lean's `decls` leave out: each depends on an axiom no check allows
HIDDEN_HELPERS = {
    "let rec": "theorem t : True :=\n  let rec aux : False := bad\n  True.intro\n",
    "where": "theorem t : True := True.intro\nnoncomputable def f : True := True.intro\nwhere g : False := bad\n",
    "mutual": (
        "mutual\ninductive A : Prop where\n  | a : A\n"
        "inductive B : Prop where\n  | b : Eq bad bad → B\nend\n"
        "theorem t : True := True.intro\n"
    ),
}


@pytest.mark.parametrize(
    "source",
    [
        "mutual\ninductive A : Prop where\n  | mk : A\ninductive _example : Eq bad bad → Prop where\nend\n",
        "namespace N\nmutual\ninductive A : Prop where\n  | mk : A\nprivate inductive «_example» : Prop where\n"
        "  | «_example» (h : Eq bad bad) : «_example»\nend\nend N\n",
    ],
    ids=["named", "quoted-private"],
)
def test_a_constant_named_like_an_example_is_refused(
    lean_with_modules: LeanToolchain, options: VerifyOptions, source: str
) -> None:
    # the audit passes over the `_example` an `example` leaves in Lean's reports: a constant of the
    # file's own with that name (a later type of a `mutual` block is not in Lean's `decls`) escaped it
    [verdict] = _verify(lean_with_modules, options, "prelude\nimport CanonEvil\n" + source)
    assert verdict.verdict == "rejected" and verdict.reasons == ["banned:_example"], verdict


@pytest.mark.parametrize("shape", list(HIDDEN_HELPERS))
def test_helpers_lean_leaves_out_of_its_declarations_are_audited_too(
    lean_with_modules: LeanToolchain, options: VerifyOptions, monkeypatch: pytest.MonkeyPatch, shape: str
) -> None:
    opening = "prelude\nimport CanonEvil\ninductive True : Prop where\n  | intro : True\n"
    [verdict] = _verify(lean_with_modules, options, opening + HIDDEN_HELPERS[shape])
    assert verdict.verdict == "rejected" and verdict.reasons == ["axiom:evil"], verdict
    # the same shapes without the axiom: verified, in one run (the guess names the helpers)
    runs = Runs(monkeypatch)
    honest = (
        HIDDEN_HELPERS[shape]
        .replace("False := bad", "True := True.intro")
        .replace("Eq bad bad", "Eq True.intro True.intro")
    )
    [clean] = _verify(lean_with_modules, options, opening + honest)
    assert clean.verified, clean
    assert runs.total == 1


@pytest.mark.timeout(60)  # a quadratic scan of this takes hours
def test_the_guess_is_linear_on_a_megabyte() -> None:
    # untrusted text: one pass over the tokens, whatever it holds; names nested absurdly
    # deep are left to Lean's own list (each would be as long as the nesting)
    assert guess_declarations("namespace A\n" * 40_000 + "theorem t : T := x\n" * 20_000) == []
    many = guess_declarations("namespace A.B.C\n" + "theorem t : T := x\n" * 50_000)
    assert many == [("A", "B", "C", "t")] * 50_000


# ---------------------------------------------------------------- runs counted


class Runs:
    """How many times Lean ran for the checks: cold processes and warm versions."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.cold = 0
        self.warm = 0
        real_cold = verifier_module.Verifier._run_cold
        real_check = warm_module.LeanServer.check

        async def cold(verifier: Verifier, *args: Any, **kwargs: Any) -> Any:
            self.cold += 1
            return await real_cold(verifier, *args, **kwargs)

        async def check(server: warm_module.LeanServer, *args: Any, **kwargs: Any) -> Any:
            self.warm += kwargs.get("limited", True)  # a fresh server's header alone is not a check
            return await real_check(server, *args, **kwargs)

        monkeypatch.setattr(verifier_module.Verifier, "_run_cold", cold)
        monkeypatch.setattr(warm_module.LeanServer, "check", check)

    @property
    def total(self) -> int:
        return self.cold + self.warm


def _verify(lean: LeanToolchain, options: VerifyOptions, *sources: str) -> list[Verdict]:
    async def go() -> list[Verdict]:
        async with Verifier(lean, options) as verifier:
            return [await verifier.verify(VerifyTask(id=str(i), full_code=s)) for i, s in enumerate(sources)]

    return asyncio.run(go())


def _guessing(monkeypatch: pytest.MonkeyPatch, guess: Callable[[str], list[tuple[str, ...]]]) -> None:
    monkeypatch.setattr(verifier_module, "guess_declarations", guess)


def test_a_well_guessed_file_runs_lean_once(
    lean: LeanToolchain, options: VerifyOptions, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = Runs(monkeypatch)
    [verdict] = _verify(lean, options, GENUINE)
    assert verdict.verified, verdict
    assert runs.total == 1


@pytest.mark.parametrize(
    ("guess", "cold_runs", "warm_versions"),
    [
        (lambda source: guess_declarations(source) + [("no", "such", "constant")], 3, 2),
        (lambda source: [], 2, 2),
        (lambda source: guess_declarations(source)[:-1], 2, 2),
    ],
    ids=["wrong", "empty", "short"],
)
def test_a_bad_guess_costs_a_run_never_a_verdict(
    lean: LeanToolchain,
    options: VerifyOptions,
    monkeypatch: pytest.MonkeyPatch,
    guess: Callable[[str], list[tuple[str, ...]]],
    cold_runs: int,
    warm_versions: int,
) -> None:
    _guessing(monkeypatch, guess)
    monkeypatch.setattr(verifier_module, "find_banned", lambda *a, **k: [])  # let the hidden sorry reach Lean
    runs = Runs(monkeypatch)
    genuine, hidden = _verify(lean, options, GENUINE, HIDDEN_SORRY)
    assert genuine.verified, genuine
    assert hidden.verdict == "rejected" and hidden.reasons == ["sorry"], hidden
    assert "hidden" in hidden.message and "fine" not in hidden.message
    per_file = cold_runs if options.pool == "cold" else warm_versions
    assert runs.total == 2 * per_file


def test_a_file_with_an_error_is_judged_on_its_first_run(
    lean: LeanToolchain, options: VerifyOptions, monkeypatch: pytest.MonkeyPatch
) -> None:
    _guessing(monkeypatch, lambda source: [("no", "such")])  # a wrong guess too: the file's own error decides
    runs = Runs(monkeypatch)
    [verdict] = _verify(lean, options, AXIOM_FREE + "theorem bad : Eq two four := Eq.refl _\n")
    assert verdict.verdict == "rejected" and verdict.reasons == ["lean_error"], verdict
    assert "no.such" not in verdict.message  # the failed guess is not the submission's error
    assert runs.total == 1


def test_a_dangling_in_at_the_end_of_a_file_changes_no_report(lean: LeanToolchain, options: VerifyOptions) -> None:
    # the fence after the file takes up a trailing `... in`: the reports still name axioms in full
    source = HIDDEN_SORRY.replace("theorem hidden", "theorem hidden'") + "set_option pp.fullNames false in\n"
    [verdict] = _verify(lean, options, source)
    assert verdict.verdict == "rejected", verdict
    [clean] = _verify(lean, options, GENUINE + "set_option pp.fullNames false in\n")
    assert clean.verified, clean


# ---------------------------------------------------------------- too much for a warm server

# 700 commands, each with a message, on one line: nothing foretells them, the worker's reports count them
FLOOD = AXIOM_FREE + "theorem t : Eq two two := Eq.refl _\n" + "#check two " * 700 + "\n"
# 700 lines of commands: seen before any server is asked
LONG = AXIOM_FREE + "theorem t : Eq two two := Eq.refl _\n" + "#check two\n" * 700


SMALL = AXIOM_FREE + "theorem s : Eq two two := Eq.refl _\n"


def _between_two_small_checks(
    lean: LeanToolchain, monkeypatch: pytest.MonkeyPatch, middle: str, timeout_s: float
) -> tuple[list[Verdict], int, Runs, VerifyOptions]:
    """A small check, `middle`, and another small check on one warm verifier of one
    worker: the verdicts, how many servers it started, the runs counted, its options."""
    warm = VerifyOptions(workers=1, timeout_s=timeout_s, memory_mb=4096, default_header=PRELUDE_HEADER, pool="warm")
    runs = Runs(monkeypatch)

    async def go() -> tuple[list[Verdict], int]:
        async with Verifier(lean, warm) as verifier:
            verdicts = [
                await verifier.verify(VerifyTask(id=str(i), full_code=s)) for i, s in enumerate([SMALL, middle])
            ]
            verdicts.append(await verifier.verify(VerifyTask(id="after", full_code=SMALL + "-- again\n")))
            assert verifier.warm_pool is not None
            return verdicts, verifier.warm_pool.started

    verdicts, started = asyncio.run(go())
    return verdicts, started, runs, warm


def test_a_check_that_reports_too_much_goes_cold_and_keeps_the_server(
    lean: LeanToolchain, monkeypatch: pytest.MonkeyPatch, no_leftover_lean: None
) -> None:
    (first, flood, after), started, runs, warm = _between_two_small_checks(lean, monkeypatch, FLOOD, 60)
    assert first.verified and flood.verified and after.verified, (first, flood, after)
    assert runs.cold == 1 and runs.warm == 3  # the flood, and only it, ran cold, after its start on a server
    assert started == 1  # its server was stopped, not lost: the next check reused it
    # the same messages as the cold path gives
    [cold] = _verify(lean, dataclasses.replace(warm, pool="cold"), FLOOD)
    assert len(flood.diagnostics) == len(cold.diagnostics) == 700


# 8,000 applications in one term: past the kernel's recursion limit, an error
# after about 3 s; the worker then spent about 30 s more on its declaration report
DEEP_ERROR = AXIOM_FREE + "theorem deep : Eq two two := " + "(fun x => x) " * 8000 + "(Eq.refl two)\n"


def test_a_check_with_an_error_is_answered_without_waiting_for_the_report_and_keeps_the_server(
    lean: LeanToolchain, monkeypatch: pytest.MonkeyPatch, no_leftover_lean: None
) -> None:
    # 25 s is several times what the error takes, and less than the report would
    (first, deep, after), started, runs, warm = _between_two_small_checks(lean, monkeypatch, DEEP_ERROR, 25)
    assert first.verified and after.verified, (first, after)
    assert deep.reasons == ["lean_error"] and "deep recursion" in deep.message, deep
    assert runs.cold == 0 and started == 1  # answered on the server, which then took the next check
    [cold] = _verify(lean, dataclasses.replace(warm, pool="cold"), DEEP_ERROR)
    assert cold.reasons == deep.reasons
    assert [d.message for d in cold.diagnostics] == [d.message for d in deep.diagnostics]


@pytest.mark.timeout(60)  # rescanning the line per message took minutes
def test_many_messages_convert_in_linear_time() -> None:
    # 20,000 messages on one 80,000-character line with characters outside the BMP
    # (where LSP's UTF-16 columns and Lean's code points differ)
    line = "𝔸x" * 40_000
    diagnostics = [
        {
            "range": {"start": {"line": 0, "character": 3 * k}, "end": {"line": 0, "character": 3 * k + 2}},
            "severity": 2,
            "message": "unused",
        }
        for k in range(20_000)
    ]
    published = json.dumps({"params": {"diagnostics": diagnostics}}).encode()
    stdout, has_error = warm_module.as_json_lines(published, line)
    converted = [json.loads(row) for row in stdout.splitlines()]
    assert not has_error and len(converted) == 20_000
    assert converted[1]["pos"] == {"line": 1, "column": 2}  # 3 UTF-16 units = 𝔸 (2) and x (1)
    assert converted[-1]["endPos"] == {"line": 1, "column": 2 * 19_999 + 1}


def test_a_long_check_goes_cold_without_asking_a_server(
    lean: LeanToolchain, monkeypatch: pytest.MonkeyPatch, no_leftover_lean: None
) -> None:
    warm = VerifyOptions(workers=1, timeout_s=60, memory_mb=4096, default_header=PRELUDE_HEADER, pool="warm")
    runs = Runs(monkeypatch)
    [verdict] = _verify(lean, warm, LONG)
    assert verdict.verified, verdict
    assert runs.cold == 1 and runs.warm == 0
