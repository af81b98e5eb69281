"""Differential tests: `mathagent.verify.lexer` against the real Lean, on generated text.

The audit trusts the lexer to see comments, strings and names exactly where Lean
sees them: text the lexer wrongly takes for a comment or string is text where a
banned command can hide. These tests generate many small files, run them through
the prelude-only Lean of the `lean` fixture (`tests/lean_oracle.py`), and compare
what Lean parsed with what the lexer reads:

1. Probes `inductive pK : Prop` between and inside comments, doc comments,
   strings, raw strings, char and name literals and «escaped» names. Lean
   declares (in its `.ilean` index) exactly the probes that are code; the lexer
   must find exactly those as `inductive pK : Prop` token runs. Two generators:
   random pieces full of tricky fragments (files Lean rejects are skipped, but
   most are compared), and files grown along the lexer's own reading, which
   Lean must accept in full. Where the lexer says something is unterminated (or
   a parse error), Lean must report an error.
2. Identifier characters: Lean's `isIdFirst`/`isIdRest` against
   `lexer.ID_FIRST`/`lexer.ID_REST`, on every range boundary and a sample of
   code points.
3. Literals: with `pp.raw` the command trace prints the syntax Lean parsed, so
   the literal tokens (numbers, field indices, chars, strings, name literals)
   of each accepted command must be exactly the lexer's; and an "unexpected
   token" error must sit on a token boundary of the lexer. Plus `#exit` glued
   to identifier characters.

Everything is seeded; a failure shows the file that reproduces it.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from lean_oracle import LeanRun, run_lean
from mathagent.verify import lexer
from mathagent.verify.declarations import split_name
from mathagent.verify.lexer import Kind
from mathagent.verify.toolchain import LeanToolchain

pytestmark = pytest.mark.slow  # hundreds of Lean runs

# ---------------------------------------------------------------- the lexer's view


def lexer_probes(source: str) -> set[tuple[str, ...]]:
    """Names `n` for which the lexer reads `inductive n : Prop` as code."""
    toks = list(lexer.code_tokens(source))
    found = set()
    for a, b, c, d in zip(toks, toks[1:], toks[2:], toks[3:], strict=False):
        if (
            a.is_word("inductive")
            and b.kind is Kind.IDENT
            and b.closed
            and c.kind is Kind.SYMBOL
            and c.text(source) == ":"
            and d.is_word("Prop")
        ):
            found.add(b.parts)
    return found


def lean_probes(run: LeanRun) -> set[tuple[str, ...]]:
    assert run.decls is not None
    return {split_name(name) for name in run.decls}


def lexer_says_error(source: str) -> str | None:
    """Why the lexer thinks Lean must reject `source` (None: no reason)."""
    for tok in lexer.tokenize(source):
        if not tok.closed:
            return f"unterminated {tok.kind.value} at {lexer.line_col(source, tok.start)}"
        if tok.kind is Kind.ERROR and not tok.ambiguous:
            return f"error token {tok.text(source)!r} at {lexer.line_col(source, tok.start)}"
    return None


def ambiguous(source: str) -> bool:
    return any(tok.ambiguous for tok in lexer.tokenize(source))


# ---------------------------------------------------------------- generated files

# Fragments drawn for the inside of each construct. Each is harmless there on its
# own (a stray that closes or breaks the construct is added separately, rarely);
# gluing two fragments without a space (`glue`) makes new combinations.
TRICKY = [
    '"',
    "'",
    "«",
    "»",
    "\\",
    '\\"',
    "{",
    "}",
    "x",
    "ab",
    "!",
    "#",
    "`",
    "''",
    "λ",
    "é",
    "‹",
    "⟨",
    "*",
    ".",
    ":",
]
COMMENT_TEXT = TRICKY + [
    "-",
    "/",
    "--",
    "/--/",
    "/-!-/",
    "/---/",
    'r#"',
    '"#',
    "\n",
    "\n",
    "\t",
    "\r\n",
    "\r",
]
LINE_TEXT = TRICKY + [
    "-",
    "/",
    "/-",
    "-/",
    "/--",
    "/-!",
    "--",
    "/--/",
    'r#"',
    '"#',
    "\t",
    "\r",
    "«unclosed",
    '"unclosed',
]
STRING_TEXT = [
    "x",
    "ab",
    "'",
    "-/",
    "/-",
    "--",
    "/--/",
    "«",
    "»",
    "{",
    "}",
    "`",
    "#",
    "r#",
    "λ",
    "\n",
    "\r\n",
    "\t",
    "/",
    '\\"',
    "\\\\",
    "\\n",
    "\\t",
    "\\r",
    "\\'",
    "\\x4A",
    "\\u03BB",
    "\\\n   x",
    "\\\nx",
    "\\\r\n y",
]
RAW_TEXT = [
    "x",
    "ab",
    "'",
    "-/",
    "/-",
    "--",
    "«",
    "»",
    "{",
    "}",
    "\\",
    "\\\\",
    "#",
    "r#",
    "\n",
    "\t",
    "`",
    "/--/",
    "\\n",
]
ESCAPE_TEXT = [
    "x",
    "-/",
    "/-",
    "--",
    '"',
    "'",
    "«",
    "\\",
    "{",
    "}",
    "#",
    "`",
    'r#"',
    ".",
    "λ",
    "\n",
    "/--/",
    ":",
    "\t",
    "-",
]
CHARS = [
    '"',
    "-",
    "/",
    "\\\\",
    '\\"',
    "\\'",
    "\\n",
    "\\t",
    "\\r",
    "\\x41",
    "\\u03bb",
    "«",
    "»",
    "{",
    "\n",
    "a",
    "λ",
    "#",
    "`",
    " ",
    "\t",
    "*",
    "r",
    "\r\n",
    "\r",
]
MALFORMED_CHARS = ["'", "ab", "\\q", "\\x4", "", "\\u12", "\\"]


@dataclass
class Gen:
    """Builds one file: `prelude`, then random pieces, with probes in and between them."""

    rng: random.Random
    count: int = 0

    def name(self) -> str:
        self.count += 1
        return f"p{self.count}"

    def probe_line(self) -> str:
        return f"inductive {self.name()} : Prop"

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def text(self, options: list[str], low: int, high: int, *, probes: float = 0.07, glue: float = 0.15) -> str:
        """`low`..`high` fragments (sometimes a whole probe line), mostly space-separated."""
        out = ""
        for _ in range(self.rng.randint(low, high)):
            frag = f"\n{self.probe_line()}\n" if self.chance(probes) else self.rng.choice(options)
            if out and not self.chance(glue):
                out += " "
            out += frag
        return out

    def sep(self) -> str:
        """Between an opener and what follows: usually a space, sometimes nothing."""
        return "" if self.chance(0.12) else " "

    # -------------------------------------------------- pieces

    def block_body(self, depth: int = 0) -> str:
        """The inside of `/- ... -/`: nested comments balanced, except for rare strays."""
        out = self.sep()
        for _ in range(self.rng.randint(0, 5)):
            if depth < 3 and self.chance(0.18):
                opener = self.rng.choice(["/-", "/-", "/--", "/-!"])
                out += opener + self.block_body(depth + 1) + "-/"
            elif self.chance(0.03):
                out += self.rng.choice(["-/", "/-", "/-/-", "-/-/"])  # unbalanced: usually an error
            else:
                out += self.text(COMMENT_TEXT, 1, 2)
            out += self.sep()
        return out

    def kinds(self) -> dict[str, tuple[float, Callable[[], str]]]:
        return {
            "probe": (2, self.probe_line),
            "line": (1.5, self.line_comment),
            "block": (3, lambda: "/-" + self.block_body() + "-/"),
            "doc": (2, lambda: "/--" + self.block_body() + "-/\n" + self.probe_line()),
            "module": (1.5, lambda: "/-!" + self.block_body() + "-/"),
            "string": (2.5, self.string),
            "raw": (2, self.raw_string),
            "escaped": (1.5, self.escaped_probe),
            "char": (1.5, self.char_literal),
            "name": (1, self.name_literal),
            "number": (1.5, self.number),
        }

    def piece(self, only: str | None = None) -> str:
        kinds = self.kinds()
        if only is not None:
            return kinds[only][1]()
        weights = [w for w, _ in kinds.values()]
        return self.rng.choices([make for _, make in kinds.values()], weights)[0]()

    def line_comment(self) -> str:
        text = "--" + self.text(LINE_TEXT, 0, 6, probes=0, glue=0.5)
        return text + "\n" + self.probe_line() if self.chance(0.3) else text

    def after_literal(self) -> str:
        """What follows a literal on its line: nothing, a comment, or the next probe."""
        r = self.rng.random()
        if r < 0.2:
            return self.sep() + "--" + self.text(LINE_TEXT, 0, 3, probes=0)
        if r < 0.3:
            return self.sep() + "/-" + self.block_body() + "-/"
        if r < 0.5:
            return "\n" + self.probe_line()
        return ""

    def string(self, probes: float = 0.07, after: bool = True) -> str:
        body = self.text(STRING_TEXT, 0, 6, probes=probes)
        if self.chance(0.04):
            body += self.rng.choice(['"', "\\", "\\q", "\\x4", "\\\n\n"])  # usually an error
        return f'#print "{body}"' + (self.after_literal() if after else "")

    def raw_string(self, probes: float = 0.07, after: bool = True) -> str:
        hashes = self.rng.choice([0, 0, 1, 1, 2, 3])
        quotes = ['"' + "#" * k + " " for k in range(hashes)] + ['r#"'] * (hashes > 0)  # cannot close it
        if self.chance(0.05):
            quotes.append('"' + "#" * hashes)  # closes it early: usually an error
        body = self.text(RAW_TEXT + quotes * 3, 0, 6, probes=probes)
        return "#print r" + "#" * hashes + '"' + body + '"' + "#" * hashes + (self.after_literal() if after else "")

    def escaped_probe(self) -> str:
        name = self.name()
        junk = self.text(ESCAPE_TEXT, 0, 4, glue=0.5)
        if self.chance(0.03):
            junk += "»"  # ends the name early: usually an error
        escaped = f"«{name}{junk}»"
        r = self.rng.random()
        if r < 0.2:
            escaped = f"{name}.{escaped}"
        elif r < 0.35:
            escaped = f"{escaped}.z{self.count}"
        return f"inductive {escaped} : Prop"

    def char_literal(self) -> str:
        char = self.rng.choice(MALFORMED_CHARS if self.chance(0.05) else CHARS)
        return f"#check_failure '{char}'" + self.after_literal()

    def name_literal(self) -> str:
        parts = [self.rng.choice(["a", "b'", "x₁", "α"])]
        for _ in range(self.rng.randint(0, 2)):
            parts.append(self.rng.choice(["c", "«" + self.text(ESCAPE_TEXT, 0, 4) + "»"]))
        return "#check_failure `" + ".".join(parts) + self.after_literal()

    def digits(self, alphabet: str, low: int = 1) -> str:
        out = [self.rng.choice(alphabet) for _ in range(self.rng.randint(low, 4))]
        if len(out) > 1 and self.chance(0.3):
            out.insert(self.rng.randint(1, len(out) - 1), "_")
        return "".join(out)

    def number_text(self) -> str:
        dec = "0123456789"
        r = self.rng.randrange(8)
        if r == 0:
            return self.digits(dec) + "." + self.digits(dec)
        if r == 1:
            return self.digits(dec) + "."
        if r == 2:
            return self.digits(dec) + self.rng.choice("eE") + self.rng.choice(["", "+", "-"]) + self.digits(dec)
        if r == 3:
            return self.digits(dec) + "." + self.digits(dec, 0) + "e" + self.digits(dec)
        if r == 4:
            return "0" + self.rng.choice("xX") + self.digits("0123456789abcdefABCDEF")
        if r == 5:
            return "0" + self.rng.choice("bB") + self.digits("01")
        if r == 6:
            return "0" + self.rng.choice("oO") + self.digits("01234567")
        return self.digits(dec)

    def number(self) -> str:
        num = self.number_text()
        if self.chance(0.05):
            num += self.rng.choice(["..", ".", "_", "e", "x"])  # often an error
        r = self.rng.random()
        if r < 0.35:  # glued to a keyword
            return f"#check_failure {num}{self.probe_line()}"
        if r < 0.5:
            return f"#check_failure {num}--{self.text(LINE_TEXT, 0, 3, probes=0)}"
        if r < 0.6:
            return f"#check_failure {num}/-{self.block_body()}-/"
        return f"#check_failure {num}" + self.after_literal()

    def file(self, pieces: int, only: str | None = None) -> str:
        body = [self.piece(only) for _ in range(pieces)]
        newline = "\r\n" if self.chance(0.05) else "\n"
        return "prelude" + newline + newline.join(body) + newline


# ---------------------------------------------------------------- files built along the lexer's reading


def lexer_state(text: str) -> str:
    """Where the lexer says the end of `text` is: in code, or inside which construct."""
    prev = last = None
    for tok in lexer.tokenize(text):
        prev, last = last, tok
    if last is None or last.end < len(text):
        return "code"
    if not last.closed:
        if last.kind is Kind.STRING and text[last.start] == "r":
            opener = text[last.start + 1 :]
            return f"raw{len(opener) - len(opener.lstrip('#'))}"  # and how many `#` close it
        if last.kind is Kind.STRING:
            return "string"
        if last.kind is Kind.DOC and _whitespace_only(text[last.start + 3 :]):
            return "doc_start"  # still in the whitespace Lean skips after `/--`: no tab there
        kinds = {Kind.COMMENT: "comment", Kind.DOC: "comment", Kind.IDENT: "escape", Kind.NAME_LIT: "escape"}
        return kinds.get(last.kind, "other")
    if last.kind is Kind.DOC and text.startswith("/--", last.start):
        return "after_doc"
    if last.kind is Kind.IDENT and last.escaped and prev is not None and prev.is_word("inductive"):
        return "after_escape"
    if last.kind is Kind.COMMENT and text.startswith("--", last.start):
        return "line"
    return "code"


def _whitespace_only(text: str) -> bool:
    """Is `text` blanks and closed comments, not ending inside a `--` comment?"""
    toks = list(lexer.tokenize(text))
    if any(t.kind is not Kind.COMMENT or not t.closed for t in toks):
        return False
    return not toks or toks[-1].end < len(text) or not text.startswith("--", toks[-1].start)


# What may come next, by the lexer's state. Only complete, valid commands in code;
# anything at all inside comments; only valid escapes inside strings.
GUIDED: dict[str, list[str]] = {
    "code": [
        " ",
        "\n",
        "PROBE",
        "PROBE",
        "/-",
        "/-",
        "/--",
        "/-!",
        "--",
        '\n#print "',
        '\n#print "',
        '\n#print r"',
        '\n#print r#"',
        '\n#print r##"',
        "ESCAPE",
        "NAME",
        "CHAR",
        "NUMBER",
    ],
    "comment": [
        "/-",
        "/-",
        "-/",
        "-/",
        "-/",
        "/",
        "-",
        "--",
        " ",
        "\n",
        '"',
        "'",
        "«",
        "»",
        "\\",
        "x",
        "!",
        "/--",
        "/-!",
        "\t",
        "\r",
        "\r\n",
        "PROBE",
        'r#"',
        '"#',
        "{",
        "`",
        "*",
    ],
    "line": ["x", "-/", "/-", '"', " ", "!", "\t", "\r", "«", "--", "\n", "\n"],
    "string": [
        "x",
        " ",
        "'",
        "-/",
        "/-",
        "--",
        "«",
        "»",
        "{",
        "}",
        "#",
        "r#",
        '\\"',
        "\\\\",
        "\\n",
        "\\t",
        "\\x41",
        "\\u03BB",
        "\\\n  x",
        "\n",
        "\t",
        "\r\n",
        "PROBE",
        '"',
        '"',
    ],
    "raw": ["x", " ", "'", "-/", "/-", "--", "«", "»", "\\", "#", "##", "\n", "\t", "PROBE", 'r#"'],
    "escape": ["x", " ", "-/", "/-", "--", '"', "'", "«", "\\", "{", "#", "\n", "\t", "PROBE", ".", "»", "»"],
}


def guided_file(rng: random.Random, steps: int) -> str:
    """A file grown one fragment at a time, each chosen for where the lexer says the
    text ends; so if the lexer reads the text as Lean does, Lean accepts the file."""
    gen = Gen(rng)
    out = "prelude\n"
    for step in range(steps + 100):
        state = lexer_state(out)
        if state == "after_doc":
            out += "\n" + gen.probe_line()
            continue
        if state == "after_escape":
            out += " : Prop"
            continue
        hashes = 0
        if state.startswith("raw"):
            state, hashes = "raw", int(state[3:])
        if step >= steps:  # wind down: close whatever is open
            closer = {"comment": "\n-/", "doc_start": "\n-/", "line": "\n", "string": '"', "escape": "»"}.get(state)
            if state == "raw":
                closer = '"' + "#" * hashes
            if closer is None:
                break
            out += closer
            continue
        if state == "raw":
            # `"` and fewer than `hashes` hashes is content; `"` glued to a later `#` run may close it
            options = GUIDED["raw"] + ['"' + "#" * k + " " for k in range(hashes)] + ['"' + "#" * hashes] * 3
            options += ['"'] * (hashes > 0)
        elif state == "doc_start":
            options = [f for f in GUIDED["comment"] if f not in ("\t", "\r")]
        else:
            options = GUIDED[state]
        for _ in range(10):
            frag = rng.choice(options)
            if frag == "PROBE":
                frag = f"\n{gen.probe_line()}\n"
            elif frag == "ESCAPE":
                frag = f"\ninductive «{gen.name()}"
            elif frag == "NAME":
                frag = f"\n#check_failure `{rng.choice(['', 'a.'])}«{gen.name()}"
            elif frag == "CHAR":
                frag = f"\n#check_failure '{rng.choice(CHARS)}'"
            elif frag == "NUMBER":
                frag = f"\n#check_failure {gen.number_text()}"
            if state == "code" or _still_open_or_closed_at_end(out, out + frag):
                out += frag
                break
    return out


def _still_open_or_closed_at_end(old: str, new: str) -> bool:
    """Did appending to `old`, which ends inside some construct, leave that construct
    open or close it exactly at the end of `new` (and not somewhere in the middle)?"""
    return not any(tok.start < len(old) <= tok.end < len(new) for tok in lexer.tokenize(new))


def guided_files(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    return [guided_file(rng, rng.randint(15, 45)) for _ in range(count)]


def generate_files(seed: int, count: int, pieces: tuple[int, int]) -> list[str]:
    rng = random.Random(seed)
    return [Gen(rng).file(rng.randint(*pieces)) for _ in range(count)]


# ---------------------------------------------------------------- 1. probes vs comments, strings, names


def compare_probes(runs: list[LeanRun], *, all_must_pass: bool = False) -> dict[str, int]:
    """Check every run; return counts. Raises AssertionError on the first disagreement."""
    stats = {"files": len(runs), "compared": 0, "lean_errors": 0, "ambiguous": 0, "probes_seen": 0, "probes_hidden": 0}
    for run in runs:
        src = run.source
        reason = lexer_says_error(src)
        if reason is not None:
            assert run.errors, f"lexer sees {reason} but Lean accepts the file:\n{src!r}"
        if ambiguous(src):
            stats["ambiguous"] += 1  # the audit rejects ambiguous spots outright
            continue
        if not run.ok:
            assert not all_must_pass, (
                f"Lean rejects a file built along the lexer's reading: {run.errors[0]}\nfile:\n{src!r}"
            )
            stats["lean_errors"] += 1
            continue
        lean, lex = lean_probes(run), lexer_probes(src)
        assert lean == lex, (
            f"probes Lean declared but the lexer missed: {sorted(lean - lex)}\n"
            f"probes the lexer found but Lean did not declare: {sorted(lex - lean)}\n"
            f"file:\n{src!r}"
        )
        stats["compared"] += 1
        stats["probes_seen"] += len(lean)
        stats["probes_hidden"] += src.count("inductive ") - len(lean)
    return stats


def test_random_pieces_agree_with_lean(lean: LeanToolchain) -> None:
    """Comments, doc comments, strings, raw strings, char and name literals, «names»
    and numbers full of tricky fragments and buried probes; unbalanced now and then."""
    stats = compare_probes(run_lean(lean.lean, generate_files(seed=20240611, count=240, pieces=(3, 9))))
    assert stats["compared"] >= 0.4 * stats["files"] and stats["compared"] >= 100, stats
    assert stats["probes_hidden"] >= 100, stats  # many probes really were inside something
    assert stats["lean_errors"] >= 10, stats  # and the generator does reach Lean's error paths


def test_files_built_along_the_lexer_reading_agree_with_lean(lean: LeanToolchain) -> None:
    """Each fragment is chosen for where the lexer says the text ends (only whole
    commands in code, anything inside comments, closers where it says something is
    open), so Lean must accept every file and declare exactly the probes the lexer sees."""
    stats = compare_probes(run_lean(lean.lean, guided_files(seed=424242, count=220)), all_must_pass=True)
    assert stats["compared"] >= 200, stats  # the rest: ambiguous spots, which the audit rejects
    assert stats["probes_hidden"] >= 80, stats


# ---------------------------------------------------------------- 2. identifier characters


def _class_bounds(spec: str) -> set[int]:
    """Every range end of a regex character class body, and its neighbours."""
    out: set[int] = set()
    for m in re.finditer(r"(.)(?:-(.))?", spec, re.DOTALL):
        lo = ord(m.group(1))
        hi = ord(m.group(2)) if m.group(2) else lo
        out |= {lo - 1, lo, hi, hi + 1}
    return out


# Lean's whitespace, and the characters that would open a string or escape
# running into the next line (they are tested by the probes above).
_NOT_TESTABLE = {" ", "\t", "\r", "\n", '"', "«", "»"}


def sample_code_points(seed: int) -> list[str]:
    rng = random.Random(seed)
    cps = set(range(0x01, 0x80)) | set(range(0x80, 0x250, 3))
    cps |= _class_bounds(lexer._LETTER_LIKE) | _class_bounds(lexer._SUBSCRIPT)
    cps |= {ord(c) for c in "℃éƩⱼλΠΣ×÷ªºµ·ℕℝ𝔽𝓒ₐₓᵢᵥ‹›⟨⟩∀∃¬→←↔∘∑∏√∞≤≥≠√ſ"}
    cps |= {rng.randrange(0x250, 0x10000) for _ in range(700)}
    cps |= {rng.randrange(0x1D400, 0x1D800) for _ in range(60)}
    cps |= {rng.randrange(0x10000, 0x110000) for _ in range(100)}
    return sorted(chr(c) for c in cps if 0 < c < 0x110000 and not 0xD800 <= c < 0xE000 and chr(c) not in _NOT_TESTABLE)


def id_char_file(chars: list[str]) -> tuple[str, list[tuple[str, str, int]]]:
    """Declare `x<i>_<c>z` (c inside a name) and `<c>q<i>` (c first) for each c, then
    `#print` each by its «escaped» name: Lean prints a declaration iff the name was one
    identifier, i.e. iff c is `isIdRest` (resp. `isIdFirst`)."""
    lines = ["prelude"]
    names = []
    for i, c in enumerate(chars):
        lines.append(f"inductive x{i}_{c}z : Prop")
        names.append((c, "rest", f"x{i}_{c}z"))
        lines.append(f"inductive {c}q{i} : Prop")
        names.append((c, "first", f"{c}q{i}"))
    lines.append("inductive sentinel_ : Prop")  # absorbs any error running on from the last line
    first = len(lines) + 1
    checks = []
    for k, (c, kind, name) in enumerate(names):
        lines.append(f"#print «{name}»")
        checks.append((c, kind, first + k))
    lines.append("#print sentinel_")
    checks.append(("", "sentinel", first + len(names)))
    return "\n".join(lines) + "\n", checks


def test_identifier_characters_agree_with_lean(lean: LeanToolchain) -> None:
    chars = sample_code_points(seed=7)
    chunks = [chars[i::8] for i in range(8)]
    files = [id_char_file(chunk) for chunk in chunks]
    runs = run_lean(lean.lean, [src for src, _ in files], max_errors=1_000_000)
    mismatches = []
    compared = 0
    for (_, checks), run in zip(files, runs, strict=True):
        for c, kind, line in checks:
            declared = bool(run.at_line(line, "information"))
            if kind == "sentinel":
                assert declared, f"sentinel missing: errors ran past the tested lines\n{run.messages[-3:]}"
                continue
            pattern = lexer.ID_REST if kind == "rest" else lexer.ID_FIRST
            if declared != bool(pattern.fullmatch(c)):
                mismatches.append(f"U+{ord(c):04X} {c!r} is{'' if declared else ' not'} id-{kind} in Lean")
            compared += 1
    assert not mismatches, "\n".join(mismatches)
    assert compared == 2 * len(chars) and len(chars) >= 1000


# ---------------------------------------------------------------- 3. literals, `#` commands

# `pp.raw` makes the command trace print the syntax tree Lean parsed, literals verbatim:
#   (Command.check_failure "#check_failure" (Term.proj (scientific "1.2") "." (fieldIdx "3")))
TRACE_HEADER = "prelude\nset_option pp.raw true\nset_option trace.Elab.command true\n"
_LITERAL_ATOM = re.compile(r'\((num|scientific|fieldIdx|char|str|name) "((?:[^"\\]|\\.)*)"\)')
_QUOTED = re.compile(r"\\(x[0-9a-fA-F]{2}|.)", re.DOTALL)
_LITERAL_KINDS = (Kind.NUMBER, Kind.CHAR, Kind.STRING, Kind.NAME_LIT)


def _unquote(text: str) -> str:
    """Undo Lean's `String.quote` (without the outer quotes)."""
    simple = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'"}
    return _QUOTED.sub(lambda m: chr(int(m.group(1)[1:], 16)) if len(m.group(1)) == 3 else simple[m.group(1)], text)


def literal_command(gen: Gen) -> str:
    """One command around one literal-ish text, often glued to something after it."""
    rng = gen.rng
    r = rng.random()
    if r < 0.45:
        text = gen.number_text() + rng.choice(
            ["", "", "", "..", ".", ".5", ".x", "e", "e+", "_", "__1", "x", "g", ".2.3", "..2", "'a'", ".«x»", "«x»"]
        )
    elif r < 0.6:
        text = "'" + rng.choice(CHARS + MALFORMED_CHARS[:3]) + "'" + rng.choice(["", "", "x", "--x", ".1"])
    elif r < 0.7:
        text = "`" + rng.choice(["a", "α", "x₁", "«" + gen.text(ESCAPE_TEXT, 0, 3, probes=0) + "»"])
        text += rng.choice(["", ".b", ".«c d»", ".1", "..", "'"])
    elif r < 0.85:
        return gen.string(probes=0, after=False) + rng.choice(["", "", "x", "--x", ".1"])
    else:
        return gen.raw_string(probes=0, after=False) + rng.choice(["", "", "#", "--x"])
    return "#check_failure " + text


def test_literals_agree_with_lean(lean: LeanToolchain) -> None:
    """Numbers, chars, name literals, strings and raw strings, glued to what follows:
    where Lean parses the command, its literal tokens are exactly the lexer's; where
    it reports an unexpected token, the lexer has a token boundary there."""
    parsed, boundaries = check_literals(lean.lean, seed=1234, count=60)
    assert parsed >= 400 and boundaries >= 100, (parsed, boundaries)


def check_literals(lean: Path, seed: int, count: int) -> tuple[int, int]:
    """Returns how many commands were compared, and how many error positions checked."""
    rng = random.Random(seed)
    files = []
    for _ in range(count):
        gen = Gen(rng)
        commands = [literal_command(gen) for _ in range(15)]
        files.append((TRACE_HEADER + "\n".join(commands) + "\n", commands))
    runs = run_lean(lean, [src for src, _ in files], max_errors=1_000_000)
    parsed = boundaries = 0
    for (src, commands), run in zip(files, runs, strict=True):
        line = TRACE_HEADER.count("\n") + 1
        after_error = False  # Lean's error recovery may have read into this command
        for command in commands:
            last = line + command.count("\n")
            where = f"in command {command!r} of file:\n{src!r}"
            errors = [m for m in run.errors if line <= m["pos"]["line"] <= last]
            toks = list(lexer.tokenize(command))
            traces = [
                m
                for m in run.at_line(line, "information")
                if m["data"].startswith("[Elab.command]") and m["pos"]["column"] == 0
            ]
            if not all(t.closed for t in toks):  # runs on into the next commands: an error somewhere
                line, after_error = last + 1, True
                continue
            if after_error and (errors or not traces):
                line, after_error = last + 1, True
                continue
            after_error = bool(errors)
            if not errors:
                assert len(traces) == 1, where
                lean_literals = [_unquote(m.group(2)) for m in _LITERAL_ATOM.finditer(traces[0]["data"])]
                # Lean reads "\r\n" as "\n" before it parses
                lexer_literals = [t.text(command).replace("\r\n", "\n") for t in toks if t.kind in _LITERAL_KINDS]
                assert lean_literals == lexer_literals, where
                parsed += 1
            for m in errors:
                if re.match(r"unexpected (token|identifier)", m["data"]) and m["pos"]["line"] == line:
                    col = m["pos"]["column"]
                    inside = [t for t in toks if t.start < col < t.end]
                    assert not inside, f"Lean has a token boundary at column {col}, the lexer has {inside} {where}"
                    boundaries += 1
            line = last + 1
    return parsed, boundaries


def test_hash_commands_take_the_longest_known_prefix(lean: LeanToolchain) -> None:
    """`#exit` glued to identifier characters is still `#exit` to Lean (it takes the
    longest token it knows); the lexer reports the whole run as one HASH word, so
    the audit must match its start."""
    rng = random.Random(5)
    rest = [c for c in "abcxyz_'!?0123456789₁₂éλα" if lexer.ID_REST.fullmatch(c)]
    suffixes = [""] + ["".join(rng.choice(rest) for _ in range(rng.randint(1, 4))) for _ in range(15)]
    sources = [f"prelude\ninductive p1 : Prop\n#exit{suffix}\ninductive p2 : Prop\n" for suffix in suffixes]
    for run in run_lean(lean.lean, sources):
        hashes = [t for t in lexer.tokenize(run.source) if t.kind is Kind.HASH]
        assert len(hashes) == 1 and hashes[0].parts[0].startswith("exit"), run.source
        assert any("'exit'" in m["data"] for m in run.messages), (run.source, run.messages)
        assert run.decls == {"p1"}, (run.source, run.decls)
