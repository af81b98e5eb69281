"""Pull Lean code out of what a math model actually writes (final answers: see `answers`)."""

from __future__ import annotations

import re
from collections.abc import Iterator

from mathagent.verify.leantext import parse_statement
from mathagent.verify.lexer import mask

_LANG = re.compile(r"[ \t]*([\w+-]*)")


def fenced_blocks(text: str) -> Iterator[tuple[str, str]]:
    """(language, body) of each fenced block: a ``` line (its language word
    after optional blanks), then everything up to the next ``` or the end.

    One pass with `str.find`: the regex this replaces retried its opening at
    every position of a fence line without a newline (quadratic on model output)."""
    pos = 0
    while (start := text.find("```", pos)) >= 0:
        eol = text.find("\n", start + 3)
        if eol < 0:
            return  # no line ends after this fence, nor after any later one
        match = _LANG.match(text, start + 3, eol)
        lang = match.group(1) if match else ""
        close = text.find("```", eol + 1)
        if close < 0:
            yield lang, text[eol + 1 :]
            return
        yield lang, text[eol + 1 : close]
        pos = close + 3


def last_lean_block(text: str) -> str | None:
    """The last Lean code block: ```lean, ```lean4 or an unlabelled fence with
    Lean in it; failing that, unfenced text from the first `theorem`/`lemma`/
    `import` line on. None when there is no Lean at all."""
    blocks = [(lang.lower(), body) for lang, body in fenced_blocks(text)]
    lean = [body for lang, body in blocks if lang in ("lean", "lean4")]
    if lean:
        return lean[-1].strip("\n")
    plain = [body for lang, body in blocks if not lang and _looks_like_lean(body)]
    if plain:
        return plain[-1].strip("\n")
    if blocks:
        return None
    start = re.search(r"(?m)^(?:import|theorem|lemma|open|example)\b", text)
    return text[start.start() :].strip("\n") if start else None


def _looks_like_lean(code: str) -> bool:
    return re.search(r"(?m)^[ \t]*(?:theorem|lemma|example|import|open)\b|:=[ \t\n]*by\b", code) is not None


def proof_after_statement(code: str, formal_statement: str) -> str:
    """The proof text that follows `formal_statement` in `code`.

    Models often repeat the header and the statement before the proof; this
    finds the theorem declaration with the statement's name and returns what
    follows its final `:=` (dropping a leading `by` when the statement already
    ends with one). If the statement is not repeated, `code` is the proof.
    """
    statement = parse_statement(formal_statement)
    masked = mask(code)
    decl = re.search(r"(?<![\w.'])(?:theorem|lemma)\s+" + re.escape(statement.name) + r"(?![\w'])", masked)
    if decl is None:
        return code
    assign = statement_end(masked, decl.end())
    if assign is None:
        return code
    rest = code[assign:]
    if statement.ends_with_by:
        rest = re.sub(r"^\s*by\b", "", rest, count=1)
    return rest


def statement_end(masked: str, start: int) -> int | None:
    """Offset just past the `:=` that ends a declaration's signature, skipping
    `:=` inside brackets (default arguments, `let`s in binders)."""
    depth = 0
    i = start
    while i < len(masked):
        c = masked[i]
        if c in "([{⦃⟨":
            depth += 1
        elif c in ")]}⦄⟩":
            depth -= 1
        elif masked.startswith(":=", i) and depth == 0:
            return i + 2
        i += 1
    return None
