"""Reading real model output: final answers, and sympy's checks (Lean blocks: test_leantext.py).

How answers are compared (math-verify) is tested case by case on the corpus
in tests/test_answer_corpus.py; here, what mathagent builds on it.
"""

from __future__ import annotations

import pytest

from mathagent.agent import answers, mathcheck
from mathagent.agent.solve import check_answer
from mathagent.vocabulary import AnswerCheck

# Written in the styles InternLM2-Math and similar models produce.
COT_OUTPUTS = [
    (
        "We factor the quadratic: $x^2-5x+6=(x-2)(x-3)$, so the roots are $2$ and $3$.\n"
        "Their sum is $2+3=5$.\nTherefore, the answer is $\\boxed{5}$.",
        "5",
    ),
    (
        "Let the width be $w$. Then ... so $w = \\frac{15}{2}$.\n\nThe final answer is $\\boxed{\\frac{15}{2}}$",
        "\\frac{15}{2}",
    ),
    (
        "First $\\boxed{3}$ is wrong, recompute... the result is $\\boxed{\\dfrac{\\sqrt{3}}{2}}$.",
        "\\frac{\\sqrt{3}}{2}",
    ),
    ("Nested: \\boxed{\\left\\{ -2, \\frac{1}{3} \\right\\}}", "\\{-2,\\frac{1}{3}\\}"),
    ("Final Answer: The final answer is $7$. I hope it is correct.", "7"),
    ("The final answer is:\n\n11", "11"),
    ("So Natalia sold 48 + 24 = 72 clips altogether.", "72"),
    ("I cannot solve this.", None),
]


@pytest.mark.parametrize(("output", "answer"), COT_OUTPUTS)
def test_final_answer(output: str, answer: str | None) -> None:
    found = answers.extract(output)
    if answer is None:
        assert found is None
    else:
        assert found is not None and answers.same(found, answer), (found, answer)


# What math-verify's own regression cases exercise (tests/test_math_verify_cases.py), written afresh.
JUDGED = [
    # an output that is only the answer, written as a person writes it: no full stop, no $...$
    ("2500", "2 500", True),
    ("0.75", ".75", True),
    ("4250", "4,250", True),
    ("4250.5", "4250,5", True),  # a decimal comma
    ("\\frac{7}{4}", "\\frac{7}{4}", True),
    ("-\\frac{7}{4}", "-\\frac{7}{4}", True),
    ("35\\%", "35 percent", True),
    ("35\\%", "$35$ %", True),
    ("\\frac{7}{4}", "\\frac{4}{7}", False),
    # one line of prose ending on its number, a unit attached
    ("12.5", "so the rope is not 10 but 12.5m", True),
    ("12.5", "so the rope is not 12.5 but 10m", False),
    # a chat model that went on past its turn
    ("42", "Adding the two parts gives 42. <|im_end|>\n<|im_start|>user\nNow compute 6 + 7.", True),
    ("42", "Adding the two parts gives 40. <|im_end|>\n<|im_start|>user\nWhat is 40 + 2?", False),
    # a fraction as a plain-text result
    ("\\frac{5}{8}", "Dividing, P = (1/2) / (4/5) = 5/8 so Bob wins with probability 5/8.", True),
    ("\\frac{5}{8}", "Dividing, P = (1/2) / (4/5) = 5/9 so Bob wins with probability 5/9.", False),
    # the whole output is the choice
    ("\\text{C}", "$C$", True),
    ("\\text{C}", "(D)", False),
    # a reference with a decimal comma (two digits after it) is also read as that number
    ("2,75", "2.75", True),
    ("2,75", "$\\boxed{2, 75}$", True),
    ("3,5", "3.5", False),  # one digit after the comma: the list 3, 5
]


@pytest.mark.parametrize(("reference", "output", "match"), JUDGED)
def test_judge_reads_answers_as_written(reference: str, output: str, match: bool) -> None:
    judgement = answers.judge(reference, output)
    assert judgement.match is match, judgement


COMPUTED = [
    ("What is the sum of the roots of x^2 - 5x + 6 = 0?", "5"),
    ("What is 2+3?", "5"),
    ("Compute $\\frac{3}{4} + \\frac{1}{8}$.", "7/8"),
    ("Solve $x^2 = 4$.", "{-2, 2}"),
    ("How many real solutions does $x^3 - x = 0$ have?", "3"),
    ("Find the product of the roots of $2x^2+3x-5=0$.", "-5/2"),
    ("If 3x + 5 = 20, what is x?", "5"),
    ("What is the largest root of $x^2 - 7x + 10 = 0$?", "5"),
    ("Evaluate $\\sqrt{49} \\cdot 3$.", "21"),
]


@pytest.mark.parametrize(("problem", "shown"), COMPUTED)
def test_sympy_computes_plain_problems(problem: str, shown: str) -> None:
    computed = mathcheck.compute(problem)
    assert computed is not None and computed.show() == shown


@pytest.mark.parametrize(
    "problem",
    [
        "What is the capital of France?",
        "Prove that there are infinitely many primes.",
        "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How "
        "many clips did she sell?",
    ],
)
def test_sympy_does_not_guess(problem: str) -> None:
    assert mathcheck.compute(problem) is None


def test_check_statuses() -> None:
    problem = "What is the sum of the roots of x^2 - 5x + 6 = 0?"
    assert check_answer(problem, "5")[0] == AnswerCheck.CHECKED
    assert check_answer(problem, "\\frac{10}{2}")[0] == AnswerCheck.CHECKED
    status, detail = check_answer(problem, "6")
    assert status == AnswerCheck.DISAGREES and "= 5" in detail
    assert check_answer(problem, None)[0] == AnswerCheck.NOT_CHECKED
    assert check_answer("Prove Fermat's last theorem.", "done")[0] == AnswerCheck.NOT_CHECKED


SAMPLES = [
    "So $p = \\boxed{\\frac{1}{2}}$.",
    "The answer is 0.5.",
    "Hence $\\boxed{1/3}$.",
    "I cannot solve this.",
    "Therefore the probability is $\\boxed{2/4}$.",
]


def test_tally_groups_equivalent_answers() -> None:
    vote = answers.tally(SAMPLES)
    assert vote.answers[3] is None and vote.answer == "\\frac{1}{2}"
    assert vote.votes == [("\\frac{1}{2}", 3), ("\\frac{1}{3}", 1)]
    assert vote.winner == 0  # no scores: the first sample of the winning answer speaks for it


def test_tally_takes_the_best_scored_sample_of_the_winning_answer() -> None:
    assert answers.tally(SAMPLES, [-0.9, -0.2, -0.1, 0.0, -0.5]).winner == 1  # not 2 or 3: they lost the vote
    assert answers.tally(["I cannot solve this.", "Nor can I."], [-1.0, -0.5]).winner == 1  # no answers: the best
    assert answers.tally([]) == answers.Tally(answers=[], votes=[], winner=None)


def test_score_judges_the_solution_and_every_sample() -> None:
    scored = answers.score("\\frac{1}{2}", SAMPLES[0], SAMPLES)
    assert (scored.match, scored.gold) == (True, "\\frac{1}{2}")
    assert scored.sample_matches == [True, True, False, False, True]
