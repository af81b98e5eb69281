"""The few facts about Lean source that must be read from text: where a
statement's name, signature and `:=` are, how to join a proof to it, and
which namespaces a (trusted) header leaves open.

Everything here reads the token stream of `lexer.tokenize`, never raw
characters, so a comment or string can never be mistaken for code. Facts
about untrusted text (which declarations a submission makes) are never
decided here: they come from Lean itself (see `declarations`). The one
reading of untrusted text, `guess_declarations`, is a guess that saves a
Lean run when Lean confirms it, and costs one when it is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

from mathagent.verify.lexer import Kind, Token, code_tokens, tokenize

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
    depth = 0
    last = None
    for k in range(start, len(tokens)):
        tok = tokens[k]
        if tok.kind is not Kind.SYMBOL:
            continue
        symbol = text[tok.start : tok.end]
        if symbol in _OPEN_BRACKETS or symbol in ("@[", ".{"):
            depth += 1
        elif symbol in _CLOSE_BRACKETS:
            depth -= 1
        elif symbol == ":=" and depth == 0:
            last = k
    return last


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


def header_namespaces(header: str) -> list[str]:
    """The namespaces a header leaves open at its end, outermost first.

    Only ever run on the task's own header (trusted text): a mistake here can
    make a genuine proof look missing, never make a false one pass.
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
    return [name for kind, name in scopes if kind == "namespace" and name is not None]


def _same_line(text: str, a: Token, b: Token) -> bool:
    return "\n" not in text[a.end : b.start]


def module_header(text: str) -> str:
    """The `prelude`/`import` block a whole file starts with, to the end of its line."""
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
    if end == 0:
        return ""
    line_end = text.find("\n", end)
    return text if line_end == -1 else text[: line_end + 1]


def imports_modules(text: str) -> bool:
    """Does the file's module header import anything (as opposed to `prelude` only)?"""
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
    after a declaration keyword, inside the namespaces open there.

    Only a guess (no macros, no generated names, no unnamed instances): the
    verifier appends a check for each, and keeps the run only when Lean's own
    list of the file's declarations is covered; anything else costs a second
    run with Lean's list. One pass over the tokens.
    """
    names: list[tuple[str, ...]] = []
    scopes: list[tuple[str, ...]] = [()]  # per open scope: the namespace it leaves open (components)
    keyword = ""  # the keyword the previous token was, if any
    for tok in code_tokens(source):
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
        keyword = _keyword(tok)
    return names


def _keyword(tok: Token) -> str:
    return tok.parts[0] if tok.kind is Kind.IDENT and not tok.escaped and len(tok.parts) == 1 else ""
