"""Just enough Lean lexing to audit untrusted source text.

Everything here works on a *masked* copy of the source: comments, string
and character literals and «quoted» names are blanked out (newlines kept, so
offsets and line numbers still match the original). A keyword can then only
match where Lean itself would read a keyword, never inside a comment or a
string a proof uses to hide or fake one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_IDENT_CHAR = re.compile(r"[\w.'!?]")


def mask(source: str, *, literals: bool = True) -> str:
    """Return `source` with comments, strings, chars and «names» blanked out.

    With `literals=False` only comments are blanked, so two texts that differ
    in a string or a name still compare different.
    """
    out = list(source)
    n = len(source)
    i = 0

    def blank(start: int, end: int, *, literal: bool = False) -> None:
        if literal and not literals:
            return
        for k in range(start, min(end, n)):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        c = source[i]
        if source.startswith("--", i):
            end = source.find("\n", i)
            end = n if end == -1 else end
            blank(i, end)
            i = end
        elif source.startswith("/-", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if source.startswith("/-", j):
                    depth, j = depth + 1, j + 2
                elif source.startswith("-/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            blank(i, j)
            i = j
        elif c == "r" and not _after_ident(source, i) and (end := _raw_string_end(source, i)):
            blank(i + 1, end, literal=True)
            i = end
        elif c == '"':
            j = i + 1
            while j < n and source[j] != '"':
                j += 2 if source[j] == "\\" else 1
            blank(i + 1, j, literal=True)
            i = j + 1
        elif c == "'" and not _after_ident(source, i):
            end = _char_literal_end(source, i)
            if end is None:
                i += 1
            else:
                blank(i + 1, end - 1, literal=True)
                i = end
        elif c == "«":
            end = source.find("»", i + 1)
            end = n if end == -1 else end
            # keep the guillemets so the result still reads as one identifier
            for k in range(i + 1, end if literals else i + 1):
                if out[k] != "\n":
                    out[k] = "_"
            i = end + 1
        else:
            i += 1
    return "".join(out)


def _after_ident(source: str, i: int) -> bool:
    return i > 0 and bool(_IDENT_CHAR.match(source[i - 1]))


def _raw_string_end(source: str, i: int) -> int | None:
    """End offset of a raw string literal `r#"..."#` starting at `i`, if one does."""
    j = i + 1
    while j < len(source) and source[j] == "#":
        j += 1
    if j >= len(source) or source[j] != '"':
        return None
    closing = '"' + "#" * (j - i - 1)
    end = source.find(closing, j + 1)
    return len(source) if end == -1 else end + len(closing)


def _char_literal_end(source: str, i: int) -> int | None:
    if source.startswith("'\\", i):
        end = source.find("'", i + 2)
        return end + 1 if 0 < end <= i + 12 else None
    if i + 2 < len(source) and source[i + 2] == "'":
        return i + 3
    return None


def line_of(text: str, offset: int) -> int:
    """1-based line number of `offset` in `text`."""
    return text.count("\n", 0, offset) + 1


def count_lines(text: str) -> int:
    """Number of lines `text` occupies when followed by more text."""
    return text.count("\n")


def normalize_ws(text: str) -> str:
    """Collapse runs of whitespace so formatting differences do not matter."""
    return " ".join(text.split())


# ---------------------------------------------------------------- statements

_DECL = re.compile(
    r"(?<![\w.'])(?P<kind>theorem|lemma)\s+(?P<name>[^\s(){}\[\]⦃⦄:,]+)"
)
_STATEMENT_END = re.compile(r":=\s*(?:by\s*)?(?:sorry\s*)?$")
_TRAILING_SORRY = re.compile(r"\bsorry\s*$")


@dataclass(frozen=True)
class Statement:
    """A `theorem`/`lemma` statement as the task gives it, split for assembly."""

    text: str  # the statement as given
    name: str  # the theorem's name as written (may carry `_root_.`)
    decl_start: int  # offset of `theorem`/`lemma`
    signature: str  # binders and type: between the name and the final `:=`
    head: str  # the statement with a trailing `sorry` removed, ending in `:=` or `by`

    @property
    def ends_with_by(self) -> bool:
        return self.head.rstrip().endswith("by")


def parse_statement(text: str) -> Statement:
    """Split a formal statement ending in `:=`, `:= by` or `:= by sorry`.

    Raises ValueError with a message fit for a person when it is not one.
    """
    masked = mask(text)
    decl = _DECL.search(masked)
    if decl is None:
        raise ValueError("formal_statement has no `theorem` or `lemma` declaration")
    if _DECL.search(masked, decl.end()):
        raise ValueError("formal_statement declares more than one theorem")
    end = _STATEMENT_END.search(masked)
    if end is None or end.start() < decl.end():
        raise ValueError("formal_statement must end with `:=`, `:= by` or `:= by sorry`")
    sorry = _TRAILING_SORRY.search(masked)
    cut = sorry.start() if sorry is not None and sorry.start() >= end.start() else len(text)
    return Statement(
        text=text,
        name=text[decl.start("name") : decl.end("name")],
        decl_start=decl.start(),
        signature=text[decl.end("name") : end.start()],
        head=text[:cut].rstrip(),
    )


def join_proof(statement: Statement, proof: str) -> str:
    """Statement head followed by the proof text, the way a person would write it."""
    head = statement.head
    body = proof
    if statement.ends_with_by and re.match(r"\s*by\b", mask(proof)):
        # the model repeated `by`; keep one
        body = re.sub(r"^\s*by", "", proof, count=1)
    if body[:1].isspace():
        return head + body
    if statement.ends_with_by:
        return head + "\n  " + body
    return head + " " + body


def declared_theorems(source: str) -> list[tuple[str, int]]:
    """(full name, offset) of every top-level theorem/lemma in a whole file.

    Namespaces are followed so `namespace Foo ... theorem bar` gives `Foo.bar`.
    """
    masked = mask(source)
    found: list[tuple[str, int]] = []
    scopes: list[str | None] = []
    command = re.compile(
        r"(?m)^[ \t]*(?:(?P<ns>namespace)\s+(?P<ns_name>\S+)|(?P<sec>section)\b[^\n]*|(?P<end>end)\b(?:[ \t]+(?P<end_name>\S+))?)"
    )
    events: list[tuple[int, str, str | None]] = []
    for m in command.finditer(masked):
        if m.group("ns"):
            events.append((m.start(), "ns", m.group("ns_name")))
        elif m.group("sec"):
            events.append((m.start(), "sec", None))
        else:
            events.append((m.start(), "end", m.group("end_name")))
    for m in _DECL.finditer(masked):
        events.append((m.start(), "decl", source[m.start("name") : m.end("name")]))
    for offset, kind, value in sorted(events, key=lambda e: e[0]):
        if kind == "ns":
            scopes.append(value)
        elif kind == "sec":
            scopes.append(None)
        elif kind == "end":
            if scopes:
                scopes.pop()
        else:
            found.append((qualify(value or "", [s for s in scopes if s]), offset))
    return found


def namespace_at_end(source: str) -> list[str]:
    """The namespaces still open at the end of `source` (a header, usually)."""
    masked = mask(source)
    scopes: list[str | None] = []
    for m in re.finditer(
        r"(?m)^[ \t]*(?:(namespace)\s+(\S+)|(section)\b|(end)\b)", masked
    ):
        if m.group(1):
            scopes.append(m.group(2))
        elif m.group(3):
            scopes.append(None)
        elif scopes:
            scopes.pop()
    return [s for s in scopes if s]


def qualify(name: str, namespaces: list[str]) -> str:
    """Full name of a declaration named `name` inside `namespaces`."""
    if name.startswith("_root_."):
        return name[len("_root_.") :]
    return ".".join([*namespaces, name])
