"""Results as data: the JSON round trip, and the one summary batch and eval both print."""

from __future__ import annotations

import json

import pytest

from mathagent.agent.records import Attempt, Result
from mathagent.cli.batch_cmd import summary_dict
from mathagent.eval.metrics import solved_ids, summarize
from mathagent.pipeline import Run
from mathagent.verify.verdict import Diagnostic
from mathagent.vocabulary import AnswerCheck, ErrorKind, PromptKind, StatementSource, Status, VerdictKind


def proved(pid: str, verdicts: list[tuple[int, VerdictKind]], *, status: Status = Status.VERIFIED) -> Result:
    attempts = [
        Attempt(
            index=i,
            round=r,
            prompt_kind=PromptKind.PROVE if r == 1 else PromptKind.REPAIR,
            text="",
            proof=" p",
            verdict=v,
        )
        for i, (r, v) in enumerate(verdicts)
    ]
    verified = next((i for i, (_, v) in enumerate(verdicts) if v is VerdictKind.VERIFIED), None)
    return Result(
        id=pid,
        status=status,
        statement="theorem t : True :=",
        statement_source=StatementSource.GIVEN,
        attempts=attempts,
        verified_attempt=verified,
        completion_tokens=10,
        model_s=1.25,
        lean_s=0.5,
        wall_s=2.0,
    )


def test_a_result_survives_its_json_line() -> None:
    result = proved("p1", [(1, VerdictKind.REJECTED), (2, VerdictKind.VERIFIED)])
    result.attempts[0].reasons = ["lean_error"]
    result.attempts[0].diagnostics = [Diagnostic("error", 3, 7, 3, 9, "type mismatch")]
    line = json.dumps(result.to_dict())
    back = Result.from_dict(json.loads(line))
    assert back == result
    assert back.status is Status.VERIFIED and back.attempts[1].verdict is VerdictKind.VERIFIED
    assert back.attempts[0].diagnostics[0].message == "type mismatch"  # typed again, not a dict
    assert json.loads(line)["attempts"][0]["diagnostics"][0]["line"] == 3
    assert json.loads(json.dumps(back.to_dict())) == json.loads(line)  # the JSON is plain strings, as before


def test_reading_a_result_ignores_unknown_keys_and_refuses_unknown_statuses() -> None:
    row = {**proved("p", [(1, VerdictKind.VERIFIED)]).to_dict(), "written_by": "a newer mathagent"}
    assert Result.from_dict(row).id == "p"
    with pytest.raises(ValueError):
        Result.from_dict({**row, "status": "half-verified"})


def test_one_summary_serves_batch_and_eval() -> None:
    results = [
        proved("first-try", [(1, VerdictKind.VERIFIED), (1, VerdictKind.REJECTED)]),
        proved("repaired", [(1, VerdictKind.REJECTED), (1, VerdictKind.REJECTED), (2, VerdictKind.VERIFIED)]),
        proved("failed", [(1, VerdictKind.REJECTED), (1, VerdictKind.TIMEOUT)], status=Status.UNVERIFIED),
        Result(
            id="word",
            status=Status.ANSWERED,
            informal="2+3?",
            answer="5",
            reference_answer="5",
            reference_match=True,
            sample_matches=[True, False],
            answer_check=AnswerCheck.CHECKED,
        ),
        Result(id="broken", status=Status.ERROR, error="model down", error_kind=ErrorKind.MODEL),
    ]
    m = summarize(results)
    assert (m.problems, m.verified, m.unverified, m.answered, m.errors) == (5, 2, 1, 1, 1)
    assert (m.formal, m.formal_solved, m.informal, m.informal_solved) == (4, 2, 1, 1)
    assert m.formal_samples == 2 and m.formal_pass_at_k[1] == pytest.approx((0.5 + 0 + 0 + 0) / 4)
    assert m.solved_by_round == {1: 1, 2: 2} and m.verified_first_round == 1
    assert m.attempts_per_solved == (1 + 3) / 2
    assert m.verdicts == {"rejected": 4, "verified": 2, "timeout": 1}
    assert m.error_messages == ["1x model down"]
    assert solved_ids(results) == {"first-try", "repaired", "word"}

    batch = summary_dict(m, Run(results, skipped=1), 0.0)  # batch --json: a view of the same numbers
    assert list(batch) == [
        "problems",
        "verified",
        "answer_checked",
        "answer_disagrees",
        "reference_matches",
        "with_reference",
        "unverified",
        "answered",
        "bad_statement",
        "errors",
        "formal",
        "verified_first_round",
        "first_round_samples",
        "attempts_per_verified",
        "model_s",
        "lean_s",
        "problem_s",
        "wall_s",
        "ran",
        "completion_tokens",
        "skipped",
        "duplicates",
        "error_messages",
        "notes",
    ]
    assert (batch["verified"], batch["first_round_samples"], batch["attempts_per_verified"]) == (2, 2, 2.0)
    assert (batch["answer_checked"], batch["reference_matches"], batch["with_reference"]) == (1, 1, 1)
    assert batch["model_s"] == round(1.25 * 3, 1) and batch["skipped"] == 1
    assert (batch["problem_s"], batch["wall_s"], batch["formal"]) == (6.0, 0.0, 4)  # summed per-problem time
    assert batch["error_messages"] == ["1x model down"] and json.loads(json.dumps(batch)) == batch
    assert set(m.to_dict()) == {
        "problems",
        "formal",
        "informal",
        "formal_solved",
        "informal_solved",
        "errors",
        "formal_samples",
        "informal_samples",
        "formal_pass_at_k",
        "informal_pass_at_k",
        "solved_by_round",
        "attempts_per_solved",
        "tokens_per_solved",
        "model_s",
        "lean_s",
        "wall_s",
        "verdicts",
        "reasons",
    }  # summary.json keeps its keys


def test_only_error_results_have_an_error_and_the_summary_counts_exactly_those() -> None:
    # the loop explains a word problem it could not take further in `error`; rows from before `note` did too
    explained = Result(id="word", status=Status.ANSWERED, answer="5", error="no Lean with Mathlib here")
    row = explained.to_dict()
    assert row["error"] is None and row["note"] == "no Lean with Mathlib here"
    old_row = {"id": "old", "status": "unverified", "error": "time limit of 5 s reached"}
    assert (Result.from_dict(old_row).error, Result.from_dict(old_row).note) == (None, "time limit of 5 s reached")
    failed = Result(id="broken", status=Status.ERROR, error="model down", error_kind=ErrorKind.MODEL)
    assert Result.from_dict(failed.to_dict()) == failed
    rows = [Result.from_dict(r).to_dict() for r in (explained.to_dict(), old_row, failed.to_dict())]  # as written back
    m = summarize(Result.from_dict(r) for r in rows)
    assert m.errors == sum(1 for r in rows if r.get("error")) == 1
    assert m.error_messages == ["1x model down"]
    assert m.notes == ["1x no Lean with Mathlib here", "1x time limit of 5 s reached"]


def test_the_lean_file_joins_header_statement_and_proof_as_the_verifier_does() -> None:
    result = Result(
        id="t", status=Status.VERIFIED, header="prelude\n", statement="theorem t : True := by sorry", proof="trivial"
    )
    assert result.theorem_text() == "theorem t : True := by\n  trivial"
    assert result.lean_file() == "prelude\n\ntheorem t : True := by\n  trivial"


def test_result_lines_stay_whole_for_every_line_splitter() -> None:
    # a model can write any character; a JSONL row must survive str.splitlines (NEL, LS, PS) and JavaScript
    from mathagent.jsonl import dumps

    text = "a\u0085b\u2028c\u2029d\x1ce\rf\x0bg\x0ch\x7fi"
    line = dumps({"id": "x", "solution": text})
    assert line.splitlines() == [line]
    assert json.loads(line)["solution"] == text
