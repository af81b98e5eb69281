"""The process that runs `math-verify` for `answers`: JSON requests on stdin,
one JSON reply per line on stdout.

math-verify bounds its own parsing and comparison with `signal.alarm`, which
only works in a process's main thread; here every call runs in this
process's main thread, so those bounds hold, and the parent kills the whole
process if a call still runs past its own wall-clock bound.

    python -m mathagent.agent.answer_worker
"""

from __future__ import annotations

import json
import logging
import math
import re
import sys
import time
from collections.abc import Callable
from typing import Any

from mathagent.verify.leantext import Fence, conclusion_value, fences

LETTERS = ("A", "B", "C", "D", "E")
MAX_ANSWER_CHARS = 2000  # a longer "answer" is not an answer: not comparable, at once
OUTPUT_TAIL_CHARS = 6000  # the final answer is at the end of an output
BARE_WORDS = 3  # an output of one line and at most this many words is an answer as written
CALL_TIMEOUT_S = 2  # math-verify's own (whole seconds) bound on each parse and comparison

_LETTER = re.compile(r"^\s*\$?\s*(?:\\text(?:bf)?\s*\{)?\s*\(?\s*([A-E])\s*\)?\s*\}?\s*\$?\s*$")
_GSM8K = re.compile(r"####\s*(.+?)\s*$", re.S)
_SAID = re.compile(r"(?:final answer|the answer|answer)\s*(?:is|:)?\s*[:=]?\s*", re.I)


def main() -> None:
    for name in ("math_verify", "latex2sympy2_extended"):
        logging.getLogger(name).setLevel(logging.CRITICAL)  # it logs whole inputs on every failure
    try:
        import math_verify  # noqa: F401
    except ImportError as exc:
        _reply({"fatal": f"math-verify is not installed: {exc}"})
        return
    _reply({"ready": True})
    for line in sys.stdin:
        request: Any = None  # a line that is not JSON must not answer with the previous request's id
        try:
            request = json.loads(line)
            result = _OPS[request["op"]](**request.get("args", {}))
            _reply({"id": request.get("id"), "result": result})
        except Exception as exc:  # noqa: BLE001 - one bad request must not end the worker
            _reply({"id": request.get("id") if isinstance(request, dict) else None, "error": repr(exc)[:300]})


def _reply(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


# ---------------------------------------------------------------- parsing


def _configs() -> list[Any]:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig

    return [LatexExtractionConfig(), ExprExtractionConfig()]


class OverTime(Exception):
    """math-verify gave up on its time bound: the answer is not comparable."""


def _bounded(call: Any) -> Any:
    # math-verify reports running out of time as an ordinary "no"; tell them apart
    started = time.monotonic()
    result = call()
    if time.monotonic() - started >= CALL_TIMEOUT_S * 0.95:
        raise OverTime
    return result


def _parse(text: str) -> list[Any]:
    from math_verify import parse

    return list(_bounded(lambda: parse(text, extraction_config=_configs(), parsing_timeout=CALL_TIMEOUT_S)))


# What math-verify does not read, rewritten before it reads (all linear patterns).
_REPEATING = re.compile(r"(?<![\d.])(\d*)\.(\d*)\\overline\s*\{(\d+)\}")
_E_NOTATION = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)[eE]([+-]?\d+)(?!\w|\.\d)")
_GROUPED = re.compile(r"^\s*-?\d{1,3}(?:(?:\s|\\,|\\ |\\;|\\:|\\!|~)\d{3})+(?:\.\d+)?\s*$")
# a base model going on to the next few-shot question, or a chat model past its turn (`<|im_start|>user`)
_NEXT_QUESTION = re.compile(r"\n\s*(?:Question|Q|Problem)\s*\d*\s*[:.]|<\|[a-z_]+\|>")
_DIGIT_OR_COMMAND = re.compile(r"\d|\\[a-zA-Z]")
_MATH_MARKERS = ("\\boxed", "\\fbox", "$", "\\[", "\\(")
_SENTENCE_END = re.compile(r"[.!?。]\s*$|[)\]}$]\s*$")
_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?(?:/\d+(?![\d.,]))?")  # 7,425.5 or 2/3
_RELATION_LIST = re.compile(r"\b[a-z]\s*=\s*-?[\w./^{}]+(?:\s*(?:,|or|and)\s*[a-z]\s*=\s*-?[\w./^{}]+)+")
_DECIMAL_COMMA = re.compile(r"-?\d+,\d{2}")  # 1000,99: two digits after a comma are never a thousands group
# `(x : ℕ)`: what precedes the colon, stripped in `_unascribed` (a lazy group between two `\s*`
# here would backtrack cubically on a long run of spaces)
_LEAN_ASCRIPTION = re.compile(r"\(([^():]+):\s*[ℕℤℚℝℂ]\s*\)")
_LEAN_SQRT = re.compile(r"(?:Real\.sqrt|√)\s*(\([^()]*\)|[\w.]+)")
_TOTAL_WORDS = re.compile(r"\b(?:in total|total|altogether|in all|overall)\b", re.I)


def _repeating_to_fraction(m: re.Match[str]) -> str:
    whole, fixed, period = m.group(1) or "0", m.group(2), m.group(3)
    # x = whole.fixed(period)...: (whole fixed period - whole fixed) / (10^|fixed| (10^|period| - 1))
    top = int(whole + fixed + period) - int(whole + fixed)
    bottom = (10 ** len(fixed)) * (10 ** len(period) - 1)
    return f"\\frac{{{top}}}{{{bottom}}}"


def _rewrite(text: str) -> str:
    text = _REPEATING.sub(_repeating_to_fraction, text)
    text = _E_NOTATION.sub(lambda m: f"{m.group(1)}\\times 10^{{{m.group(2)}}}", text)
    return text.replace("\\varnothing", "\\emptyset")


def _said_answer(text: str) -> str | None:
    """What follows the last "the answer is" on its line."""
    said = list(_SAID.finditer(text))
    if not said:
        return None
    rest = text[said[-1].end() :].strip().split("\n")[0].rstrip(".").strip()
    if _DECIMAL_COMMA.fullmatch(rest):
        rest = rest.replace(",", ".")
    return rest or None


def _plain_answer(tail: str) -> str | None:
    """The answer of an output with no math markup at all (GSM8K style)."""
    said = _said_answer(tail)
    if said:
        return said
    if not _SENTENCE_END.search(tail) and not _ends_on_number(tail):
        return None  # cut off mid-sentence: whatever number came last is not an answer
    sentences = [x for x in re.split(r"(?<=[.!?])\s+|\n+", tail.strip()) if _NUMBER.search(x)]
    if not sentences:
        return None
    last = sentences[-1]
    relations = list(_RELATION_LIST.finditer(last))
    if relations:
        return relations[-1].group().rstrip(".").replace(" or ", ", ").replace(" and ", ", ")
    if "=" in last:
        after = _NUMBER.search(last[last.rindex("=") + 1 :])
        if after:
            return after.group().replace(",", "")
    total = list(_TOTAL_WORDS.finditer(last))
    if total:
        after = _NUMBER.search(last[total[-1].end() :])
        if after:
            return after.group().replace(",", "")
    return _NUMBER.findall(last)[-1].replace(",", "")


def _ends_on_number(text: str) -> bool:
    """One line ending on a number, a unit perhaps attached (`... which is 1,000.99€`): that number
    is its answer, though no full stop follows (a colon announces what is still to come)."""
    words = text.split()
    return (
        "\n" not in text.strip()
        and bool(words)
        and not text.rstrip().endswith(":")
        and any(c.isdigit() for c in words[-1])
    )


def _lean_conclusion(code: str) -> str | None:
    """The value a restated Lean theorem ends on, in LaTeX: `theorem t (h : ...) : x = 3 := ...` gives `3`."""
    value = conclusion_value(code)
    if value is None:
        return None
    value = _LEAN_ASCRIPTION.sub(_unascribed, value)
    value = _LEAN_SQRT.sub(lambda m: "\\sqrt{" + m.group(1).removeprefix("(").removesuffix(")") + "}", value)
    return value.replace("Real.pi", "\\pi").replace("π", "\\pi").replace("*", "\\cdot ")


def _unascribed(m: re.Match[str]) -> str:
    inner = m.group(1)
    return "(" + (inner.strip() or inner[-1]) + ")"  # all blank: its last character, as before


def parse_output(output: str) -> list[Any]:
    """The final answer of a model's output, parsed ([] when there is none)."""
    tail = output[-OUTPUT_TAIL_CHARS:]
    cut = _NEXT_QUESTION.search(tail)
    if cut and cut.start() > 0:
        tail = tail[: cut.start()]  # a base model went on to write the next few-shot question
    blocks = list(fences(tail))
    if blocks:  # a Lean restatement after the solution: the prose answers first, else the theorem
        found = _parse_text(_outside(tail, blocks))
        return found or _parse_plain(_lean_conclusion(blocks[-1].body))
    return _parse_text(tail)


def _outside(text: str, blocks: list[Fence]) -> str:
    """`text` with each fenced block replaced by a newline."""
    pieces, last = [], 0
    for block in blocks:
        pieces.append(text[last : block.start])
        last = block.end
    pieces.append(text[last:])
    return "\n".join(pieces)


def _parse_text(tail: str) -> list[Any]:
    tail = _rewrite(tail)
    hashes = tail.rfind("####")
    if hashes >= 0:  # GSM8K's own answer line, which models trained on it write too
        tail = "the answer is " + tail[hashes + 4 :].strip().split("\n")[0].replace(",", "")
    if _is_bare(tail):  # `1 000`, `.4`, `28 percent`, `\frac{10}{9}`: read as math-verify reads them
        return _parse(tail) or _parse_plain(tail.strip())
    if not any(marker in tail for marker in _MATH_MARKERS):
        return _parse_plain(_plain_answer(tail))
    if "\\boxed" not in tail and "\\fbox" not in tail:
        after_math = tail[max(tail.rfind("$"), tail.rfind("\\]"), tail.rfind("\\)")) + 1 :]
        if _said_answer(after_math) or _RELATION_LIST.search(after_math):
            return _parse_plain(_plain_answer(after_math))  # "... $f(x)=0$. Therefore x = 2 or x = 3."
        if not _SENTENCE_END.search(tail) and not _SAID.search(tail):
            return []  # cut off mid-sentence, no answer given yet
    found = _parse(tail)
    if found and _GROUPED.match(_shown(found) or ""):  # 1 000 or 1\,000: one number
        return _parse("$" + re.sub(r"[^\d.\-]", "", _shown(found) or "") + "$")
    if found:
        return found
    # "The answer is \dfrac13." outside math mode: read the phrase's rest as math
    return _parse_plain(_said_answer(tail))


def _is_bare(text: str) -> bool:
    """One line of a few words with a digit or a LaTeX command: an answer as written, not a
    solution cut off (whose last number is no answer)."""
    text = text.strip()
    return "\n" not in text and len(text.split()) <= BARE_WORDS and _DIGIT_OR_COMMAND.search(text) is not None


def _parse_plain(answer: str | None) -> list[Any]:
    return _parse(f"${answer}$") if answer and len(answer) <= MAX_ANSWER_CHARS else []


def parse_reference(reference: str) -> tuple[list[Any], str | None]:
    """A dataset's answer parsed, or the multiple-choice letter it is."""
    text = reference.strip()
    gsm8k = _GSM8K.search(text)
    if gsm8k:
        text = gsm8k.group(1).replace(",", "")
    letter = _LETTER.match(text)
    if letter:
        return [], letter.group(1)
    if len(text) > MAX_ANSWER_CHARS:
        return [], None
    text = _rewrite(text.replace("\\$", ""))  # MATH writes money as \$32
    wrapped = text if re.search(r"(?<!\\)\$", text) or "\\boxed" in text else f"${text}$"
    return _parse(wrapped), None


def _shown(parsed: list[Any]) -> str | None:
    """The text of a parse result as written (math-verify keeps it second)."""
    if not parsed:
        return None
    return str(parsed[-1]) if isinstance(parsed[-1], str) else str(parsed[0])


_LETTER_ANSWERS = (
    re.compile(r"\\boxed\s*\{\s*(?:\\text(?:bf)?\s*\{)?\s*\(?([A-E])\)?\s*\}?\s*\}"),
    re.compile(r"(?:answer|option|choice)\b[^A-Za-z0-9\n]{0,20}\(?([A-E])\)?(?![A-Za-z0-9])", re.I),
    re.compile(r"\(([A-E])\)"),
)


def _letter(output: str) -> str | None:
    """The multiple-choice letter a model's output ends on: the output itself when it is one,
    a boxed letter, else the last one named as the answer, else the last `(X)`."""
    alone = _LETTER.match(output)  # `$E$`, `(B)`: the whole output is the letter
    if alone:
        return alone.group(1)
    for pattern in _LETTER_ANSWERS:
        found = pattern.findall(output)
        if found:
            return str(found[-1]).upper()
    from math_verify import StringExtractionConfig, parse

    found = parse(output, extraction_config=[StringExtractionConfig(strings=LETTERS)], parsing_timeout=CALL_TIMEOUT_S)
    return str(found[-1]).upper() if found else None


def _verify(gold: list[Any], pred: list[Any]) -> bool | None:
    from math_verify import verify

    if not gold or not pred:
        return None
    try:
        same = bool(_bounded(lambda: verify(gold, pred, allow_set_relation_comp=True, timeout_seconds=CALL_TIMEOUT_S)))
    except OverTime:
        return None
    return same or _numerically_equal(gold[0], pred[0])


def _numerically_equal(a: Any, b: Any) -> bool:
    """Two plain numbers within 1e-9 (relative): `2^{0.5}` is `\\sqrt{2}`."""
    try:
        import sympy

        if not (isinstance(a, sympy.Basic) and isinstance(b, sympy.Basic)) or a.free_symbols or b.free_symbols:
            return False
        x, y = complex(sympy.N(a, 30)), complex(sympy.N(b, 30))
    except (TypeError, ValueError, AttributeError, OverflowError):
        return False
    if not all(math.isfinite(part) for part in (x.real, x.imag, y.real, y.imag)):
        return False  # 1000! is not within 1e-9 of anything once both are infinity
    return abs(x - y) <= 1e-9 * max(1.0, abs(y))


# ---------------------------------------------------------------- operations


def judge(reference: str, output: str) -> dict[str, Any]:
    try:
        gold, choice = parse_reference(reference)
    except OverTime:
        return {"answer": None, "gold": None, "match": None}
    if choice is not None:
        letter = _letter(output[-OUTPUT_TAIL_CHARS:])
        return {"answer": letter, "gold": choice, "match": letter == choice}
    try:
        pred = parse_output(output)
    except OverTime:
        return {"answer": None, "gold": _shown(gold), "match": None}
    if not pred:  # no final answer: wrong, as every scorer counts it
        return {"answer": None, "gold": _shown(gold), "match": False if gold else None}
    match = _verify(gold, pred)
    if not match and _DECIMAL_COMMA.fullmatch(reference.strip()):  # `1,22`: the list 1, 22 or the number 1.22
        match = _verify(_parse_or_nothing(reference.strip().replace(",", ".")), pred) or match
    return {"answer": _shown(pred), "gold": _shown(gold), "match": match}


def extract(output: str) -> str | None:
    try:
        return _shown(parse_output(output))
    except OverTime:
        return None


def same(a: str, b: str) -> bool | None:
    """Two final answers (as `extract` gives them) the same?"""
    if max(len(a), len(b)) > MAX_ANSWER_CHARS:
        return None
    try:
        return _verify(_parse(f"${a}$"), _parse(f"${b}$"))
    except OverTime:
        return None


def group(answers: list[str]) -> list[int]:
    """Each answer's group: the index of the first answer equivalent to it."""
    parsed = [_parse_or_nothing(a) for a in answers]
    groups: list[int] = []
    firsts: list[int] = []  # the first answer of each group, in order
    for i, this in enumerate(parsed):
        home = next(
            (j for j in firsts if answers[i] == answers[j] or (this and parsed[j] and _verify(parsed[j], this))), i
        )
        if home == i:
            firsts.append(i)
        groups.append(home)
    return groups


def _parse_or_nothing(answer: str) -> list[Any]:
    if len(answer) > MAX_ANSWER_CHARS:
        return []
    try:
        return _parse(f"${answer}$")
    except OverTime:
        return []


_OPS: dict[str, Callable[..., Any]] = {"judge": judge, "extract": extract, "same": same, "group": group}


if __name__ == "__main__":
    main()
