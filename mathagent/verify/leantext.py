"""The few facts about Lean source that must be read from text: where a
statement's name, signature and `:=` are, how to join a proof to it, and
which namespaces a (trusted) header leaves open.

Everything here reads the token stream of `lexer.tokenize`, never raw
characters, so a comment or string can never be mistaken for code. Facts
about untrusted text (which declarations a submission makes) are never
decided here: they come from Lean itself (see `declarations`). The one
reading of untrusted text, `guess_declarations`, is a guess that saves a
Lean run when Lean confirms it, and costs one when it is wrong.

Model output is read here too (`fences`, `last_lean_block`,
`proof_after_statement`, `first_statement`, `conclusion_value`): what to
submit, which statement was formalised, which value a restated theorem
ends on. Those readings choose what Lean is asked; Lean's verdict alone
decides whether it holds. Each is one pass over its input (model output is
untrusted, and may be megabytes of anything).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass

from mathagent.verify.lexer import Kind, Token, code_tokens, mask, tokenize

_DECL_WORDS = ("theorem", "lemma")
_MODIFIERS = {"private", "protected", "noncomputable", "nonrec", "partial", "unsafe"}
_OPEN_BRACKETS = set("([{⦃⟨")
_CLOSE_BRACKETS = set(")]}⦄⟩")


@dataclass(frozen=True)
class Statement:
    """A `theorem`/`lemma` statement as the task gives it, split for assembly."""

    text: str  # the statement as given
    name: str  # the theorem's name as written (may carry `_root_.`, «quotes»)
    name_parts: tuple[str, ...]  # the name's components, quotes removed
    decl_start: int  # offset of `theorem`/`lemma`
    universes: str  # `.{u, v}` as written, or ""
    signature: str  # binders and type: after the name (and universes), before the final `:=`
    head: str  # the statement up to its final `:=` (or the `by` after it); no `sorry`, no comment
    ends_with_by: bool
    prefix: str  # `open X in`, `set_option ... in` before the declaration (modifiers and attributes dropped)

    @property
    def rooted(self) -> bool:
        return self.name_parts[:1] == ("_root_",)


def parse_statement(text: str) -> Statement:
    """Split a formal statement ending in `:=`, `:= by`, `:= sorry` or `:= by sorry`.

    Raises ValueError with a message fit for a person when it is not one.
    """
    tokens = list(code_tokens(text))
    decls = [i for i, t in enumerate(tokens) if any(t.is_word(w) for w in _DECL_WORDS)]
    if not decls:
        raise ValueError("formal_statement has no `theorem` or `lemma` declaration")
    if len(decls) > 1:
        raise ValueError("formal_statement declares more than one theorem")
    d = decls[0]
    if d + 1 >= len(tokens) or tokens[d + 1].kind is not Kind.IDENT:
        raise ValueError("formal_statement's theorem has no name")
    name_tok = tokens[d + 1]
    after_name = d + 2
    universes = ""
    if after_name < len(tokens) and _is(text, tokens[after_name], ".{") and tokens[after_name].start == name_tok.end:
        close = next((k for k in range(after_name + 1, len(tokens)) if _is(text, tokens[k], "}")), None)
        if close is None:
            raise ValueError("formal_statement has an unclosed universe list `.{`")
        universes = text[tokens[after_name].start : tokens[close].end]
        after_name = close + 1
    assign = _final_assign(text, tokens, after_name)
    if assign is None:
        raise ValueError("formal_statement must end with `:=`, `:= by` or `:= by sorry`")
    tail = tokens[assign + 1 :]
    words = [text[t.start : t.end] for t in tail]
    if words not in ([], ["by"], ["sorry"], ["by", "sorry"]) or any(t.kind is not Kind.IDENT for t in tail):
        raise ValueError("formal_statement must end with `:=`, `:= by` or `:= by sorry`")
    ends_with_by = words[:1] == ["by"]
    head_end = tail[0].end if ends_with_by else tokens[assign].end
    sig_start = tokens[after_name - 1].end
    return Statement(
        text=text,
        name=text[name_tok.start : name_tok.end],
        name_parts=name_tok.parts,
        decl_start=tokens[d].start,
        universes=universes,
        signature=text[sig_start : tokens[assign].start],
        head=text[:head_end],
        ends_with_by=ends_with_by,
        prefix=_command_prefix(text, tokens[d].start),
    )


def _is(text: str, tok: Token, symbol: str) -> bool:
    return tok.kind is Kind.SYMBOL and text[tok.start : tok.end] == symbol


def _final_assign(text: str, tokens: list[Token], start: int) -> int | None:
    """Index of the last `:=` outside brackets (default arguments and `let`s in
    binders have their own `:=`)."""
    return next(reversed([k for k, symbol in _top_level(text, tokens, start, len(tokens)) if symbol == ":="]), None)


def _top_level(text: str, tokens: list[Token], start: int, stop: int) -> Iterator[tuple[int, str]]:
    """(index, text) of each symbol among `tokens[start:stop]` outside brackets
    (the brackets themselves left out)."""
    depth = 0
    for k in range(start, stop):
        tok = tokens[k]
        if tok.kind is not Kind.SYMBOL:
            continue
        symbol = text[tok.start : tok.end]
        if symbol in _OPEN_BRACKETS or symbol in ("@[", ".{"):
            depth += 1
        elif symbol in _CLOSE_BRACKETS:
            depth -= 1
        elif depth == 0:
            yield k, symbol


def _command_prefix(text: str, decl_start: int) -> str:
    """The `open ... in` / `set_option ... in` part before a declaration's
    modifiers: it changes how the statement elaborates, so the reference copy
    keeps it. Doc comments, attributes and visibility do not, and are dropped."""
    end = 0
    for tok in tokenize(text[:decl_start]):
        if (
            tok.kind is Kind.DOC
            or _is(text, tok, "@[")
            or (tok.kind is Kind.IDENT and not tok.escaped and tok.parts[0] in _MODIFIERS)
        ):
            break
        if tok.kind is not Kind.COMMENT:
            end = tok.end
    return text[:end] + " " if end else ""


def join_proof(statement: Statement, proof: str) -> str:
    """Statement head followed by the proof text, the way a person would write it."""
    head = statement.head
    body = proof
    first = next(iter(code_tokens(proof)), None)
    if statement.ends_with_by and first is not None and first.is_word("by"):
        body = proof[first.end :]  # the model repeated `by`; keep one
    if body[:1].isspace():
        return head + body
    if statement.ends_with_by:
        return head + "\n  " + body
    return head + " " + body


# ---------------------------------------------------------------- trusted headers


@functools.lru_cache(maxsize=16)  # a run has a few headers; a row's own can be megabytes, so keep few
def header_namespaces(header: str) -> tuple[str, ...]:
    """The namespaces a header leaves open at its end, outermost first.

    Only ever run on the task's own header (trusted text): a mistake here can
    make a genuine proof look missing, never make a false one pass.
    (Remembered: the problems of a run share a header, lexed once instead of
    once per check, a fifth of the Python work of a check in a warm run.)
    """
    scopes: list[tuple[str, str | None]] = []  # (kind, namespace component)
    tokens = list(code_tokens(header))
    for k, tok in enumerate(tokens):
        nxt = tokens[k + 1] if k + 1 < len(tokens) else None
        if tok.is_word("namespace") and nxt is not None and nxt.kind is Kind.IDENT:
            scopes += [("namespace", part) for part in nxt.parts]
        elif tok.is_word("section"):
            # `section A.B` opens one scope per component, like `namespace`
            count = len(nxt.parts) if nxt is not None and nxt.kind is Kind.IDENT and _same_line(header, tok, nxt) else 1
            scopes += [("section", None)] * count
        elif tok.is_word("mutual"):
            scopes.append(("mutual", None))
        elif tok.is_word("end") and scopes:
            named = nxt is not None and nxt.kind is Kind.IDENT and _same_line(header, tok, nxt)
            for _ in range(len(nxt.parts) if named and nxt is not None else 1):
                if scopes:
                    scopes.pop()
    return tuple(name for kind, name in scopes if kind == "namespace" and name is not None)


def _same_line(text: str, a: Token, b: Token) -> bool:
    return "\n" not in text[a.end : b.start]


def module_header(text: str) -> str:
    """The `prelude`/`import` block a whole file starts with, to the end of its line."""
    end = module_header_end(text)
    if end == 0:
        return ""
    line_end = text.find("\n", end)
    return text if line_end == -1 else text[: line_end + 1]


def module_header_end(text: str) -> int:
    """Where the code of the `prelude`/`import` block ends (0: there is none)."""
    end = 0
    expect_name = False
    for tok in tokenize(text):
        if tok.kind is Kind.COMMENT or tok.kind is Kind.DOC:
            continue
        if expect_name:
            if tok.kind is not Kind.IDENT:
                break
            end, expect_name = tok.end, False
        elif tok.is_word("import"):
            expect_name = True
        elif tok.kind is Kind.IDENT and tok.parts[0] in ("prelude", "module", "public", "private", "meta", "all"):
            end = tok.end
        else:
            break
    return end


@functools.lru_cache(maxsize=256)
def imports_modules(text: str) -> bool:
    """Does the file's module header import anything (as opposed to `prelude` only)?
    (Remembered: most problems of a run share one header, asked about for each.)"""
    return any(t.is_word("import") for t in code_tokens(module_header(text)))


def count_lines(text: str) -> int:
    """Number of lines `text` occupies when followed by more text."""
    return text.count("\n")


def identifier(parts: tuple[str, ...]) -> str:
    """A name's components as Lean source. Every component is «quoted»: a
    quoted component is always an identifier, never a keyword."""
    return ".".join(f"«{p}»" for p in parts)


# ---------------------------------------------------------------- a guess, for speed

_MAX_GUESSED_DEPTH = 64  # components of a guessed name: beyond, the guess costs more than it saves
_NAMED_DECLS = {"theorem", "lemma", "def", "abbrev", "opaque", "axiom", "structure", "class", "inductive", "instance"}


def guess_declarations(source: str) -> list[tuple[str, ...]]:
    """The full names (components) a file seems to declare, in order: each name
    after a declaration keyword, inside the namespaces open there, and the
    constants declared inside a declaration: an inductive type's constructors
    (`| c`), a structure's or class's fields and constructor (names opening a
    line after its `where`), `let rec` and `where` helpers of a definition.

    Only a guess (no macros, no generated names, no unnamed instances): the
    verifier appends a check for each, and keeps the run only when Lean's own
    list of the file's declarations is covered; anything else costs a second
    run with Lean's list. One pass over the tokens.
    """
    names: list[tuple[str, ...]] = []
    scopes: list[tuple[str, ...]] = [()]  # per open scope: the namespace it leaves open (components)
    keyword = ""  # the keyword the previous token was, if any
    inner = _Inner()  # the declaration the tokens are in, for the constants declared inside it
    previous = ("", "")  # the two tokens before this one, as text
    end = 0
    for tok in code_tokens(source):
        text = source[tok.start : tok.end]
        opens_line = source.find("\n", end, tok.start) >= 0
        if keyword == "namespace" and tok.kind is Kind.IDENT:
            scopes.append(scopes[-1] + tok.parts if len(scopes[-1]) < _MAX_GUESSED_DEPTH else scopes[-1])
        elif keyword in ("section", "mutual"):
            scopes.append(scopes[-1])
        elif keyword == "end" and len(scopes) > 1:
            scopes.pop()
        elif keyword in _NAMED_DECLS and tok.kind is Kind.IDENT and _keyword(tok) not in _NAMED_DECLS:
            name = tok.parts[1:] if tok.parts[:1] == ("_root_",) else scopes[-1] + tok.parts
            if len(name) <= _MAX_GUESSED_DEPTH:  # absurd depths are left to Lean's own list
                names.append(name)
                inner = _Inner(keyword, name)
        elif tok.kind is Kind.IDENT and inner.name and len(tok.parts) == 1 and _keyword(tok) not in _COMMAND_WORDS:
            helper = inner.helper(tok, previous, opens_line)
            if helper:
                names.append(inner.name + tok.parts)
        if _keyword(tok) in _OTHER_COMMANDS or text.startswith("#"):
            inner = _Inner()
        elif _keyword(tok) == "where":
            inner.after_where = True
        keyword, previous, end = _keyword(tok), (previous[1], text), tok.end
    return names


# commands that end the declaration before them (the constants inside it are guessed until then)
_OTHER_COMMANDS = {"end", "namespace", "section", "open", "universe", "variable", "set_option", "mutual", "example"}
_NOT_FIELDS = {"deriving", "extends", "where", "with"}
_COMMAND_WORDS = (
    _NAMED_DECLS | _OTHER_COMMANDS | {"noncomputable", "private", "protected", "partial", "nonrec", "unsafe"}
)


class _Inner:
    """The declaration the guess is in, and where in it."""

    def __init__(self, kind: str = "", name: tuple[str, ...] = ()) -> None:
        self.kind, self.name = kind, name
        self.after_where = False

    def helper(self, tok: Token, previous: tuple[str, str], opens_line: bool) -> bool:
        """Does this identifier name a constant declared inside the declaration?"""
        word = tok.parts[0]
        if self.kind == "inductive":
            return previous[1] == "|"  # a constructor
        if self.kind in ("structure", "class"):
            # a field or the constructor, opening a line after `where`, or in a binder group `(x y : T)`
            return self.after_where and word not in _NOT_FIELDS and (opens_line or previous[1] == "(")
        # a `let rec` or `where` helper (an instance's `where` gives its fields' values: no new constants)
        return previous == ("let", "rec") or (previous[1] == "where" and self.kind != "instance")


def _keyword(tok: Token) -> str:
    return tok.parts[0] if tok.kind is Kind.IDENT and not tok.escaped and len(tok.parts) == 1 else ""


# ---------------------------------------------------------------- model output

_FENCE_LANG = re.compile(r"[ \t]*([\w+-]*)")
_LEAN_FENCES = ("lean", "lean4")
# where unfenced Lean starts in prose, and what makes an unlabelled block Lean (prose is not lexed)
_LEAN_START = re.compile(r"(?m)^(?:import|theorem|lemma|open|example)\b")
_LOOKS_LIKE_LEAN = re.compile(r"(?m)^[ \t]*(?:theorem|lemma|example|import|open)\b|:=[ \t\n]*by\b")
_STATEMENT_WORDS = ("theorem", "lemma", "example")
_NOT_EQUATIONS = set("<>!=")  # `<=`, `>=`, `!=`, `==`: not the `=` a value follows


@dataclass(frozen=True)
class Fence:
    """A fenced block of Markdown: a ``` line (its language word after optional
    blanks), then everything up to the next ``` or the end of the text."""

    lang: str
    body: str
    start: int  # offset of the opening ```
    end: int  # offset just past the closing ``` (the end of the text when unclosed)


def fences(text: str) -> Iterator[Fence]:
    """Every fenced block of `text`, in order. One pass with `str.find`: a
    pattern would retry its opening at every position of a fence line that
    has no newline (quadratic on model output)."""
    pos = 0
    while (start := text.find("```", pos)) >= 0:
        eol = text.find("\n", start + 3)
        if eol < 0:
            return  # no line ends after this fence, nor after any later one
        match = _FENCE_LANG.match(text, start + 3, eol)
        lang = match.group(1) if match else ""
        close = text.find("```", eol + 1)
        if close < 0:
            yield Fence(lang, text[eol + 1 :], start, len(text))
            return
        yield Fence(lang, text[eol + 1 : close], start, close + 3)
        pos = close + 3


def last_lean_block(text: str) -> str | None:
    """The last Lean code block: ```lean, ```lean4 or an unlabelled fence with
    Lean in it; failing that, unfenced text from the first `theorem`/`lemma`/
    `import` line on. None when there is no Lean at all."""
    blocks = list(fences(text))
    lean = [b.body for b in blocks if b.lang.lower() in _LEAN_FENCES]
    if lean:
        return lean[-1].strip("\n")
    plain = [b.body for b in blocks if not b.lang and _LOOKS_LIKE_LEAN.search(b.body)]
    if plain:
        return plain[-1].strip("\n")
    if blocks:
        return None
    start = _LEAN_START.search(text)
    return text[start.start() :].strip("\n") if start else None


def proof_after_statement(code: str, formal_statement: str) -> str:
    """The proof text that follows `formal_statement` in `code`.

    Models often repeat the header and the statement before the proof; this
    finds the first `theorem`/`lemma` with the statement's name and returns
    what follows its signature's `:=` (dropping a leading `by` when the
    statement already ends with one). If the statement is not repeated,
    `code` is the proof. Raises ValueError when `formal_statement` is not one.
    """
    statement = parse_statement(formal_statement)
    tokens = list(code_tokens(code))
    for k, tok in enumerate(tokens[:-1]):
        name = tokens[k + 1]
        if _is_decl_word(tok) and name.kind is Kind.IDENT and name.parts == statement.name_parts:
            assign = _signature_end(code, tokens, k + 2)
            if assign is None:
                return code
            after = tokens[assign + 1] if assign + 1 < len(tokens) else None
            if statement.ends_with_by and after is not None and after.is_word("by"):
                return code[after.end :]
            return code[tokens[assign].end :]
    return code


def starts_with_theorem(text: str) -> bool:
    """Does `text` begin (comments aside) with `theorem` or `lemma`? How chat and
    solve tell a Lean statement from a question."""
    first = next(code_tokens(text), None)
    return first is not None and _is_decl_word(first)


def first_statement(code: str) -> str | None:
    """The first `theorem`/`lemma` that starts a line, up to its signature's
    `:=`: the statement an autoformalization wrote. None when there is none."""
    tokens = list(code_tokens(code))
    line_start = True  # nothing but blanks and comments since the last newline
    last_end = 0
    for k, tok in enumerate(tokens):
        if tok.kind is Kind.ERROR and code[tok.start : tok.end].isspace():
            continue  # tabs: blanks here, though Lean rejects them
        line_start = line_start or "\n" in code[last_end : tok.start]
        if line_start and _is_decl_word(tok) and k + 1 < len(tokens):
            assign = _signature_end(code, tokens, k + 2)
            return code[tok.start : tokens[assign].end].strip() if assign is not None else None
        line_start, last_end = False, tok.end
    return None


def conclusion_value(code: str) -> str | None:
    """The value the last `theorem`/`lemma`/`example` in `code` concludes with:
    what follows the last `=` of the type after its last colon outside
    brackets (`theorem t (h : 2 * x = 6) : x = 3 := ...` gives `3`), as Lean
    source with comments and strings blanked. None when its conclusion has no `=`."""
    tokens = list(code_tokens(code))
    decls = [k for k, tok in enumerate(tokens) if any(tok.is_word(w) for w in _STATEMENT_WORDS)]
    if not decls:
        return None
    assign = _signature_end(code, tokens, decls[-1] + 1)
    stop = assign if assign is not None else len(tokens)
    colons = [k for k, symbol in _top_level(code, tokens, decls[-1] + 1, stop) if symbol == ":"]
    if not colons:
        return None
    conclusion = tokens[colons[-1] + 1 : stop]
    equals = [k for k, tok in enumerate(conclusion) if _is(code, tok, "=") and not _in_relation(code, tok)]
    if not equals or equals[-1] + 1 == len(conclusion):
        return None
    start, end = conclusion[equals[-1] + 1].start, conclusion[-1].end
    return mask(code[start:end]).strip()


def _is_decl_word(tok: Token) -> bool:
    return tok.is_word("theorem") or tok.is_word("lemma")


def _in_relation(text: str, tok: Token) -> bool:
    """Is this `=` part of `<=`, `>=`, `!=`, `==` or `=>`?"""
    before = text[tok.start - 1 : tok.start]
    return before in _NOT_EQUATIONS or text.startswith(("=", ">"), tok.end)


def _signature_end(text: str, tokens: list[Token], start: int) -> int | None:
    """Index of the first `:=` outside brackets from token `start` on: the end
    of a declaration's signature (default arguments and `let`s in binders
    have their own `:=`)."""
    return next((k for k, symbol in _top_level(text, tokens, start, len(tokens)) if symbol == ":="), None)


def top_level_tactics(proof: str) -> list[str]:
    """The tactics of a proof's outer `by` block, each as written (its own lines
    included), in order; [] when the proof is not a `by` block.

    A tactic starts at a token that begins a line at the block's column (the
    column of the first tactic, when it is on a line of its own); a block
    written on the `by` line is one tactic. Comments and strings are skipped by
    the lexer, so they never start or split one. Linear in the text. Used only
    to pick where a tactic search starts: a wrong split costs a worse start,
    never a verdict (the search's proofs are checked whole)."""
    tokens = code_tokens(proof)
    by = next(tokens, None)
    first = next(tokens, None)
    if by is None or first is None or not by.is_word("by"):
        return []
    if "\n" not in proof[by.end : first.start]:
        return [proof[first.start :].strip()]
    column = first.start - (proof.rfind("\n", 0, first.start) + 1)
    starts = [first.start]
    line_end = proof.find("\n", first.start)  # tokens before this offset are on the current line
    for tok in tokens:
        if line_end == -1 or tok.start < line_end:
            continue
        line_start = proof.rfind("\n", line_end, tok.start) + 1  # the first token of a later line
        if tok.start - line_start == column:
            starts.append(tok.start)
        line_end = proof.find("\n", tok.start)
    ends = [*starts[1:], len(proof)]
    return [_dedent(proof[s:e].rstrip(), column) for s, e in zip(starts, ends, strict=True)]


def _dedent(tactic: str, column: int) -> str:
    """A tactic's continuation lines, moved left by the block's column (its first line starts at 0)."""
    lines = tactic.split("\n")
    return "\n".join([lines[0], *(line[column:] if line[:column].isspace() else line.lstrip() for line in lines[1:])])
