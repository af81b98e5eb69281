"""Lean 4's lexical structure, as Lean's own parser reads it, in linear time.

The audit must see the text the way Lean does: where a comment ends, where a
string ends, what is one identifier. Every rule here mirrors one in Lean's
parser (`Lean.Parser.Basic`: `whitespace`, `finishCommentBlock`,
`tokenFn`, `identFn`, `strLitFnAux`, `charLitFnAux`, `rawStrLitFnAux`,
`numberFnAux`; `Lean.isLetterLike`, `isIdFirst`, `isIdRest`) and is checked
against the real Lean by the differential tests in
tests/test_lexer_differential.py.

Two things a text lexer cannot know, and how they are made safe:

* Lean's token table (which symbol sequences are one token) depends on the
  imported environment. A comment opener, quote or char literal glued to a
  preceding symbol (`⁻¹'"'`, `=--`) may be inside one of Lean's tokens or
  may start a comment or literal; such spots are marked `ambiguous` and the
  audit rejects them instead of guessing.
* Interpolated strings (`s!"{...}"` and friends, defined by libraries) run
  code inside braces. A string literal containing `{` is marked `braces`;
  the audit rejects it rather than guess which strings are interpolated.

Anything unterminated (comment, string, «name») runs to the end of the text,
as it does in Lean, where it is a parse error.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator
from dataclasses import dataclass


class Kind(enum.Enum):
    IDENT = "ident"  # possibly dotted, possibly «escaped»; keywords are idents too
    NUMBER = "number"
    STRING = "string"  # "..." and r#"..."#
    CHAR = "char"  # 'x'
    NAME_LIT = "name_lit"  # `foo
    HASH = "hash"  # `#` followed by identifier characters: #eval, #exit, ...
    SYMBOL = "symbol"  # anything else: one character, or `:=`, `@[`, `.{`
    COMMENT = "comment"  # -- ... and /- ... -/ (Lean's whitespace)
    DOC = "doc"  # /-- ... -/ and /-! ... -/ (tokens to Lean, comments to us)
    ERROR = "error"  # a tab, a lone carriage return, a malformed char literal: a parse error in Lean


@dataclass(frozen=True, slots=True)
class Token:
    kind: Kind
    start: int
    end: int
    parts: tuple[str, ...] = ()  # IDENT, NAME_LIT, HASH: name components with «» removed
    escaped: bool = False  # an IDENT with a «quoted» component
    closed: bool = True  # False: unterminated, runs to the end of the text
    ambiguous: bool = False  # Lean's reading depends on its token table (see module doc)
    braces: bool = False  # a STRING containing `{` (could be an interpolated string)

    def text(self, source: str) -> str:
        return source[self.start : self.end]

    def is_word(self, word: str) -> bool:
        """Is this the unescaped identifier `word` (how Lean spells a keyword)?"""
        return self.kind is Kind.IDENT and not self.escaped and self.parts == (word,)

    @property
    def name(self) -> str:
        return ".".join(self.parts)


# ---------------------------------------------------------------- character classes

# Lean.isLetterLike (Lean 4.35): Greek without λ, Π, Σ; Coptic; polytonic Greek;
# the letterlike block; mathematical alphanumerics; Latin-1 and Latin Extended-A letters.
_LETTER_LIKE = (
    "\u03b1-\u03ba\u03bc-\u03c9"
    "\u0391-\u039f\u03a1\u03a2\u03a4-\u03a9"
    "\u03ca-\u03fb"
    "\u1f00-\u1ffe"
    "\u2100-\u214f"
    "\U0001d49c-\U0001d59f"
    "\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u00ff"
    "\u0100-\u017f"
)
# Lean.isSubScriptAlnum
_SUBSCRIPT = "\u2080-\u2089\u2090-\u209c\u1d62-\u1d6a\u2c7c"
_ID_FIRST = "A-Za-z_" + _LETTER_LIKE
_ID_REST = _ID_FIRST + "0-9'!?" + _SUBSCRIPT

ID_FIRST = re.compile(f"[{_ID_FIRST}]")
ID_REST = re.compile(f"[{_ID_REST}]")
_PLAIN_PART = re.compile(f"[{_ID_FIRST}][{_ID_REST}]*")
_REST_RUN = re.compile(f"[{_ID_REST}]*")
_WHITESPACE = re.compile(r"(?:[ \n]|\r\n)+")
_LINE_BODY = re.compile(r"[^\n]*")
_TABS = re.compile(r"\t+")
_NESTING = re.compile(r"-/|/-")
# A string body: the unrolled loop is linear and cannot fail before the end of the text.
_STRING_BODY = re.compile(r'[^"\\]*(?:\\.[^"\\]*)*', re.S)
_RAW_OPEN = re.compile(r"r(#*)\"")
_RAW_CLOSE = re.compile(r'"#*')
# Lean reads "\r\n" as "\n" before it parses, so `'<CR><LF>'` is one character.
_CHAR_LIT = re.compile(r"'(?:\\(?:[\\\"'rnt]|x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4})|\r\n|[^\\])'", re.S)
_NUMBER = re.compile(
    r"0[bB][01_]*|0[oO][0-7_]*|0[xX][0-9a-fA-F_]*|[0-9][0-9_]*(?:\.(?!\.)[0-9_]*)?(?:[eE][+-]?[0-9_]*)?"
)
_DIGITS = re.compile(r"[0-9]+")
_TERM_CLOSERS = set(")]}⟩⦄›⟫")
_TWO_CHAR_SYMBOLS = (":=", "@[", ".{")
# A symbol token ending in one of these is complete: Lean has no token that
# glues it to a following quote or comment opener.
_CLOSED_SYMBOLS = set("()[]{},;⟨⟩⦃⦄‹›⟪⟫") | {":=", "@[", ".{"}


def tokenize(source: str) -> Iterator[Token]:
    """Every token and comment of `source`, in order (whitespace skipped)."""
    n = len(source)
    i = 0
    prev: Token | None = None
    before: Token | None = None  # the token before `prev`
    while i < n:
        c = source[i]
        if c == " " or c == "\n" or (c == "\r" and source.startswith("\r\n", i)):
            m = _WHITESPACE.match(source, i)
            i = m.end() if m else i + 1
            continue
        glued = prev is not None and prev.end == i and _is_open_symbol(prev, source)
        if c == "-" and source.startswith("--", i):
            m = _LINE_BODY.match(source, i)
            end = m.end() if m else n
            tok = Token(Kind.COMMENT, i, end, ambiguous=glued)
        elif c == "/" and source.startswith("/-", i):
            doc = source.startswith("/--", i) or source.startswith("/-!", i)
            # Lean's `whitespace` looks at the character after `/-` (to rule out a doc
            # comment) and then steps over it: `/-/-` nests once, `/-/-/` is closed.
            # `/--` and `/-!` are tokens, and every token is followed by `whitespace`:
            # blanks and comments right after the opener come before the body.
            end, closed = _comment_end(source, _skip_whitespace(source, i + 3) if doc else i + 3)
            tok = Token(Kind.DOC if doc else Kind.COMMENT, i, end, closed=closed, ambiguous=glued)
        elif c == '"':
            tok = _string(source, i, glued)
        elif c == "'":
            tok = _char_or_symbol(source, i, glued)
        elif "0" <= c <= "9":
            # `h.1.2` is `h`, `.1`, `.2`: after a `.` glued to a term Lean reads a field index, digits only.
            m = (_DIGITS if _is_projection_dot(before, prev, i, source) else _NUMBER).match(source, i)
            tok = Token(Kind.NUMBER, i, m.end() if m else i + 1)
        elif c == "`" and i + 1 < n and (source[i + 1] == "«" or ID_FIRST.match(source, i + 1)):
            ident = _ident(source, i + 1)
            tok = Token(Kind.NAME_LIT, i, ident.end, parts=ident.parts, escaped=ident.escaped, closed=ident.closed)
        elif c == "r" and (m := _RAW_OPEN.match(source, i)):
            tok = _raw_string(source, i, len(m.group(1)), m.end())
        elif c == "«" or ID_FIRST.match(c):
            tok = _ident(source, i)
        elif c == "#" and i + 1 < n and ID_FIRST.match(source, i + 1):
            m = _REST_RUN.match(source, i + 1)
            end = m.end() if m else i + 1
            tok = Token(Kind.HASH, i, end, parts=(source[i + 1 : end],))
        elif c == "\t":
            m = _TABS.match(source, i)  # a parse error in Lean; one token for the run
            tok = Token(Kind.ERROR, i, m.end() if m else i + 1)
        elif c == "\r":
            tok = Token(Kind.ERROR, i, i + 1)
        else:
            two = source[i : i + 2]
            tok = Token(Kind.SYMBOL, i, i + (2 if two in _TWO_CHAR_SYMBOLS else 1))
        yield tok
        before, prev = prev, tok
        i = tok.end


def code_tokens(source: str) -> Iterator[Token]:
    """The tokens Lean parses: comments and doc comments left out."""
    for tok in tokenize(source):
        if tok.kind is not Kind.COMMENT and tok.kind is not Kind.DOC:
            yield tok


def mask(source: str) -> str:
    """`source` with comments, doc comments, string and char contents blanked
    (newlines kept, so offsets and line numbers still match)."""
    out: list[str] = []
    last = 0
    for tok in tokenize(source):
        if tok.kind in (Kind.COMMENT, Kind.DOC, Kind.STRING, Kind.CHAR):
            out.append(source[last : tok.start])
            out.append(re.sub(r"[^\n]", " ", source[tok.start : tok.end]))
            last = tok.end
    out.append(source[last:])
    return "".join(out)


# ---------------------------------------------------------------- pieces


def _is_projection_dot(before: Token | None, prev: Token | None, i: int, source: str) -> bool:
    """Is the text at `i` right after a `.` that is glued to the end of a term?"""
    if prev is None or before is None or prev.end != i or before.end != prev.start:
        return False
    if prev.kind is not Kind.SYMBOL or source[prev.start : prev.end] != ".":
        return False
    if before.kind is Kind.SYMBOL:
        return source[before.start : before.end] in _TERM_CLOSERS
    return before.kind in (Kind.IDENT, Kind.NUMBER, Kind.STRING, Kind.CHAR, Kind.NAME_LIT)


def _is_open_symbol(prev: Token, source: str) -> bool:
    """Could `prev` be the start of a longer Lean token that swallows what follows?"""
    return prev.kind is Kind.SYMBOL and source[prev.start : prev.end] not in _CLOSED_SYMBOLS


def _skip_whitespace(source: str, i: int) -> int:
    """Lean's `whitespace` from `i`: blanks, `--` and `/-` comments (the text's end if unterminated)."""
    n = len(source)
    while i < n:
        if m := _WHITESPACE.match(source, i):
            i = m.end()
        elif source.startswith("--", i):
            m = _LINE_BODY.match(source, i)
            i = m.end() if m else n
        elif source.startswith("/-", i) and not source.startswith(("/--", "/-!"), i):
            i, closed = _comment_end(source, i + 3)
            if not closed:
                return n
        else:
            break
    return i


def _comment_end(source: str, i: int) -> tuple[int, bool]:
    """End of a block comment whose body starts at `i` (nesting depth 1)."""
    depth = 1
    for m in _NESTING.finditer(source, i):
        if m.group() == "-/":
            depth -= 1
            if depth == 0:
                return m.end(), True
        else:
            depth += 1
    return len(source), False


def _string(source: str, i: int, glued: bool) -> Token:
    m = _STRING_BODY.match(source, i + 1)
    end = m.end() if m else i + 1
    closed = end < len(source)  # the body stops only at `"` or the end of the text
    braces = "{" in source[i + 1 : end]
    return Token(Kind.STRING, i, end + 1 if closed else end, closed=closed, ambiguous=glued, braces=braces)


def _raw_string(source: str, i: int, hashes: int, body: int) -> Token:
    for m in _RAW_CLOSE.finditer(source, body):
        if len(m.group()) - 1 >= hashes:
            return Token(Kind.STRING, i, m.start() + 1 + hashes)
    return Token(Kind.STRING, i, len(source), closed=False)


def _char_or_symbol(source: str, i: int, glued: bool) -> Token:
    # Lean reads a char literal at a token start unless the next character is
    # another quote; anything but `'c'` or `'\escape'` there is a parse error.
    if source.startswith("''", i):
        return Token(Kind.SYMBOL, i, i + 1)
    m = _CHAR_LIT.match(source, i)
    if m is None:
        return Token(Kind.ERROR, i, i + 1) if not glued else Token(Kind.SYMBOL, i, i + 1)
    return Token(Kind.CHAR, i, m.end(), ambiguous=glued)


def _ident(source: str, i: int) -> Token:
    """An identifier starting at `i` (Lean's `identFnAux`)."""
    parts: list[str] = []
    escaped = False
    start = i
    n = len(source)
    while True:
        if source.startswith("«", i):
            close = source.find("»", i + 1)
            if close == -1:
                return Token(Kind.IDENT, start, n, parts=(*parts, source[i + 1 :]), escaped=True, closed=False)
            parts.append(source[i + 1 : close])
            escaped = True
            i = close + 1
        else:
            m = _PLAIN_PART.match(source, i)
            if m is None:  # only reachable after a `.` that was checked below
                break
            parts.append(m.group())
            i = m.end()
        if i + 1 < n and source[i] == "." and (source[i + 1] == "«" or ID_FIRST.match(source, i + 1)):
            i += 1
            continue
        break
    return Token(Kind.IDENT, start, i, parts=tuple(parts), escaped=escaped)


def line_col(source: str, offset: int) -> tuple[int, int]:
    """1-based line and 0-based column (code points) of `offset`, as Lean reports them."""
    line = source.count("\n", 0, offset) + 1
    return line, offset - (source.rfind("\n", 0, offset) + 1)
