"""The answer judge against a graded corpus of model outputs written the way real models write.

Each line of ``data/answer_corpus.jsonl`` pairs a dataset reference answer with a model's raw output and the
verdict a careful human grader would give. The expected verdicts are the mathematically correct ones, not what
any library returns; where a library disagrees, the judge has to handle it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

import pytest

CORPUS_PATH = Path(__file__).resolve().parent / "data" / "answer_corpus.jsonl"

CATEGORIES = (
    "boxed",
    "no_box_formula",
    "answer_is",
    "fractions",
    "radicals",
    "left_right",
    "units_text",
    "numbers",
    "percentages",
    "intervals",
    "sets_tuples",
    "relations",
    "matrices",
    "expressions",
    "gsm8k",
    "multiple_choice",
    "lean_restated",
    "no_answer",
)

MIN_CASES = 150

# The judge bounds its own work to a few seconds; this limit is generous but finite.
PATHOLOGICAL_LIMIT_S = 10.0


def load_corpus(path: Path = CORPUS_PATH) -> list[dict[str, Any]]:
    """Every case of the corpus, with its line number; malformed lines fail loudly."""
    cases: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            case = json.loads(line)
            case["line"] = lineno
            cases.append(case)
    return cases


CORPUS = load_corpus()


def judge_function() -> Callable[[str, str], Any]:
    """The judge under test, imported late so the corpus checks run even while it is being written."""
    from mathagent.agent.answers import judge

    return judge


def describe_failure(case: dict[str, Any], judgement: Any) -> str:
    """One failing case: where it is, what was expected and what the judge saw."""
    output = case["output"]
    tail = output if len(output) <= 160 else "..." + output[-157:]
    lines = [
        f"line {case['line']}: expected match={case['expected']!r}",
        f"    reference: {case['reference'][:160]!r}",
        f"    output (tail): {tail!r}",
        f"    judgement: answer={judgement.answer!r} gold={judgement.gold!r} match={judgement.match!r}",
    ]
    if case.get("note"):
        lines.append(f"    note: {case['note']}")
    return "\n".join(lines)


# -- the corpus itself ---------------------------------------------------------------------------------------


def test_corpus_size() -> None:
    assert len(CORPUS) >= MIN_CASES, f"the corpus has {len(CORPUS)} cases, fewer than {MIN_CASES}"


def test_corpus_cases_are_well_formed() -> None:
    problems = []
    for case in CORPUS:
        where = f"line {case['line']}"
        if case.get("category") not in CATEGORIES:
            problems.append(f"{where}: unknown category {case.get('category')!r}")
        if not isinstance(case.get("reference"), str) or not case["reference"]:
            problems.append(f"{where}: reference must be a non-empty string")
        if not isinstance(case.get("output"), str):
            problems.append(f"{where}: output must be a string")
        if not isinstance(case.get("expected"), bool):
            problems.append(f"{where}: expected must be true or false")
        if "note" in case and not isinstance(case["note"], str):
            problems.append(f"{where}: note must be a string")
        extra = set(case) - {"category", "reference", "output", "expected", "note", "line"}
        if extra:
            problems.append(f"{where}: unexpected keys {sorted(extra)}")
    assert not problems, "\n".join(problems)


def test_corpus_has_no_duplicates() -> None:
    seen: dict[tuple[str, str], int] = {}
    duplicates = []
    for case in CORPUS:
        key = (case["reference"], case["output"])
        if key in seen:
            duplicates.append(f"line {case['line']} repeats line {seen[key]}")
        seen.setdefault(key, case["line"])
    assert not duplicates, "\n".join(duplicates)


@pytest.mark.parametrize("category", CATEGORIES)
def test_category_has_both_verdicts(category: str) -> None:
    verdicts = [case["expected"] for case in CORPUS if case["category"] == category]
    assert verdicts, f"no cases in category {category!r}"
    assert True in verdicts, f"category {category!r} has no case expected to match"
    assert False in verdicts, f"category {category!r} has no case expected not to match"


# -- the judge against the corpus ----------------------------------------------------------------------------


@pytest.mark.parametrize("category", CATEGORIES)
def test_judge_agrees_with_corpus(category: str) -> None:
    judge = judge_function()
    cases = [case for case in CORPUS if case["category"] == category]
    failures = []
    for case in cases:
        judgement = judge(case["reference"], case["output"])
        if judgement.match != case["expected"]:
            failures.append(describe_failure(case, judgement))
    wrong = len(failures)
    message = f"{wrong} of {len(cases)} {category!r} cases judged wrongly:\n" + "\n".join(failures)
    assert wrong == 0, message


# -- pathological outputs, from a worker thread ----------------------------------------------------------------

PATHOLOGICAL = [
    pytest.param("The number is $\\boxed{10^{10^{10}}}$.", id="power-tower"),
    pytest.param("The number is $\\boxed{1000!}$.", id="factorial"),
    pytest.param("Adding them up: $\\boxed{" + "1+" * 25000 + "1}$", id="50kB-sum"),
    pytest.param("So the value is $\\boxed{" + "(" * 30 + "1" + ")" * 30 + "}$.", id="30-nested-parentheses"),
]


@pytest.mark.parametrize("output", PATHOLOGICAL)
def test_pathological_output_returns_quickly_from_a_worker_thread(output: str) -> None:
    # Signal-based timeouts only work in the main thread; servers and batch runs call the judge from workers.
    judge = judge_function()
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="judge-worker")
    try:
        start = time.monotonic()
        future = executor.submit(judge, "5", output)
        try:
            judgement = future.result(timeout=PATHOLOGICAL_LIMIT_S)
        except FutureTimeout:
            pytest.fail(f"judge did not return within {PATHOLOGICAL_LIMIT_S} s from a worker thread")
        elapsed = time.monotonic() - start
    finally:
        executor.shutdown(wait=False, cancel_futures=True)
    assert elapsed < PATHOLOGICAL_LIMIT_S, f"judge took {elapsed:.1f} s (limit {PATHOLOGICAL_LIMIT_S} s)"
    assert judgement.match is None or judgement.match is False, (
        f"pathological output judged equal to 5: answer={judgement.answer!r} gold={judgement.gold!r} "
        f"match={judgement.match!r}"
    )
