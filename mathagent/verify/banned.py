"""Commands a submitted proof may not contain, found before Lean ever runs.

Each of these either adds an unchecked assumption (`axiom`, `extern`,
`implemented_by`, `native_decide`), skips or cuts the check (`#exit`,
`set_option debug.*`), hides or fakes messages (`#guard_msgs`,
`set_option warn.sorry`), or runs arbitrary meta code that could do any of
that (`#eval`, `run_cmd`, `elab`, elaborator attributes, `open Lean`, ...).
Proofs never need them.

The scan reads the token stream of `lexer.tokenize`, so comments and strings
can neither hide a command nor raise a false alarm, and «quoted» names are
compared with their quotes removed. Spots whose reading depends on Lean's
token table, and strings that may be interpolated, are rejected too: the
audit never guesses in the attacker's favour. One pass, linear in the text.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable
from dataclasses import dataclass

from mathagent.verify import verdict as codes
from mathagent.verify.lexer import Kind, Token, tokenize
from mathagent.vocabulary import Reason

# Command and term keywords, spelled as Lean's keywords (unescaped identifiers).
_WORDS = {
    "axiom": "axiom",
    "run_cmd": "run_cmd",
    "run_tac": "run_tac",
    "run_elab": "run_elab",
    "run_meta": "run_meta",
    "by_elab": "by_elab",
    "elab": "elab",
    "elab_rules": "elab_rules",
    "macro": "macro",
    "macro_rules": "macro_rules",
    "syntax": "syntax",
    "declare_syntax_cat": "declare_syntax_cat",
    "notation": "notation",
    "infix": "infix",
    "infixl": "infixl",
    "infixr": "infixr",
    "prefix": "prefix",
    "postfix": "postfix",
    "binder_predicate": "binder_predicate",
    "unsafe": "unsafe",
    "initialize": "initialize",
    "builtin_initialize": "builtin_initialize",
    "simproc": "simproc",
    "dsimproc": "dsimproc",
    "simproc_decl": "simproc",
    "dsimproc_decl": "dsimproc",
    "register_option": "register_option",
    "register_simp_attr": "register_simp_attr",
    "include_str": "include_str",
    "implemented_by": "implemented_by",
    "extern": "extern",
    "addDecl": "meta programming",
    "addAndCompile": "meta programming",
}
_NATIVE = "native_decide"

# `#` commands that only print: everything else starting with `#` runs code
# (`#eval`, `#guard`, ...), cuts the file (`#exit`) or hides messages (`#guard_msgs`).
_HARMLESS_HASH = {"check", "check_failure", "print", "reduce", "synth"}

# `set_option` families that switch off a check, hide messages or change lexing.
_BANNED_OPTIONS = {
    "debug": "set_option debug",
    "bootstrap": "set_option bootstrap",
    "warn": "set_option warn",
    "doc": "set_option doc",
    "compiler": "set_option compiler",
    "interpreter": "set_option interpreter",
    "internal": "set_option internal",
    "kernel": "set_option kernel",
}

# Attributes that attach unchecked code or register code that Lean will run.
_BANNED_ATTRIBUTES = {
    "implemented_by",
    "extern",
    "csimp",
    "init",
    "builtin_init",
    "export",
    "command_elab",
    "term_elab",
    "tactic",
    "macro",
    "delab",
    "app_unexpander",
    "app_delab",
    "env_linter",
    "norm_num",
    "positivity",
    "simproc",
    "aesop",
    "command_parser",
    "term_parser",
    "tactic_parser",
    "never_extract",
}

# Namespaces whose code is the elaborator, kernel or compiler themselves.
_META_NAMESPACES = {
    "Elab",
    "Meta",
    "Environment",
    "Kernel",
    "Compiler",
    "Parser",
    "PrettyPrinter",
    "Server",
    "IR",
    "Macro",
    "MacroM",
    "Syntax",
    "Tactic",
    "Command",
    "CoreM",
    "Core",
}


@dataclass(frozen=True)
class BannedUse:
    """One banned command found in submitted text."""

    command: str
    line: int  # 1-based, within the scanned text
    column: int  # 0-based, like Lean's positions

    @property
    def reason(self) -> Reason:
        return codes.banned_reason(self.command)


def find_banned(source: str, *, allow_native: bool = False, whole_file: bool = False) -> list[BannedUse]:
    """Every banned command in `source`, in order, one per place.

    In a whole file every declaration is audited, but an `example` leaves no
    constant behind to audit: writing `sorryAx` by hand (a "synthetic" sorry
    raises no warning) is the one way to hide a sorry there, so `whole_file`
    bans it too; and since the audit passes over the `_example` an example
    leaves in Lean's reports, a whole file may not name anything `_example`.
    """
    found: dict[int, str] = {}
    for offset, command in _scan(tokenize(source), source, allow_native, whole_file):
        found.setdefault(offset, command)  # one report per place
    newlines = [m.start() for m in re.finditer("\n", source)]
    uses = []
    for offset, command in found.items():
        line = bisect.bisect_left(newlines, offset)  # newlines before the offset
        column = offset - (newlines[line - 1] + 1 if line else 0)
        uses.append(BannedUse(command, line + 1, column))
    return uses


def _scan(tokens: Iterable[Token], source: str, allow_native: bool, whole_file: bool) -> Iterable[tuple[int, str]]:
    attribute_depth = 0  # inside `@[ ... ]` or `attribute [ ... ]`
    after_attribute_word = False
    previous: Token | None = None
    for tok in tokens:
        if tok.ambiguous:
            yield tok.start, "ambiguous lexing"
        if tok.kind is Kind.STRING and tok.braces:
            yield tok.start, "string interpolation"
        if tok.kind is Kind.COMMENT or tok.kind is Kind.DOC:
            continue
        text = source[tok.start : tok.end] if tok.kind is Kind.SYMBOL else ""
        if tok.kind is Kind.HASH:
            if tok.parts[0] not in _HARMLESS_HASH:
                yield tok.start, "#" + _hash_command(tok.parts[0])
        elif tok.kind is Kind.IDENT:
            yield from _ident_rules(tok, previous, attribute_depth > 0, allow_native)
            if whole_file and tok.parts[-1:] == ("sorryAx",):
                yield tok.start, "sorryAx"
            if whole_file and "_example" in tok.parts:
                # the name Lean gives an `example`, whose constant it drops: the audit passes over
                # `_example` names, so a file may not give one to a constant of its own
                yield tok.start, "_example"
        if text == "@[":
            attribute_depth += 1
        elif text == "[" and (attribute_depth > 0 or after_attribute_word):
            attribute_depth += 1
        elif text == "]" and attribute_depth > 0:
            attribute_depth -= 1
        after_attribute_word = tok.is_word("attribute")
        previous = tok


def _ident_rules(
    tok: Token, previous: Token | None, in_attribute: bool, allow_native: bool
) -> Iterable[tuple[int, str]]:
    parts = tok.parts[1:] if tok.parts[:1] == ("_root_",) else tok.parts
    if not tok.escaped and len(parts) == 1:
        word = parts[0]
        if word in _WORDS:
            yield tok.start, _WORDS[word]
        elif word == _NATIVE and not allow_native:
            yield tok.start, _NATIVE
        elif word == "instance" and previous is not None and previous.is_word("local"):
            yield tok.start, "local instance"
    if in_attribute and parts and (parts[0] in _BANNED_ATTRIBUTES or parts[0].startswith("builtin_")):
        yield tok.start, "elaborator attribute"
    if in_attribute and parts == ("instance",) and previous is not None and previous.is_word("local"):
        yield tok.start, "local instance"
    if previous is not None and previous.is_word("set_option") and parts and parts[0] in _BANNED_OPTIONS:
        yield tok.start, _BANNED_OPTIONS[parts[0]]
    if parts[:1] == ("Lean",) and (len(parts) == 1 or parts[1] in _META_NAMESPACES):
        # `open Lean`, `namespace Lean`, `Lean.Elab.…`: the way into meta code
        yield tok.start, "meta programming"


def _hash_command(word: str) -> str:
    # Lean takes the longest `#` token it knows, so `#exitfoo` is `#exit`.
    for known in ("exit", "eval", "guard_msgs", "guard", "print", "check"):
        if word.startswith(known):
            return known if known not in _HARMLESS_HASH else word
    return word
