"""Commands a submitted proof may not contain, found before Lean ever runs.

Each of these either adds an unchecked assumption (`axiom`, `extern`,
`implemented_by`, `native_decide`), skips or cuts the check (`#exit`,
`set_option debug.*`), hides or fakes messages (`#guard_msgs`), or runs
arbitrary meta code that could do any of that (`#eval`, `run_cmd`, `elab`,
elaborator attributes, ...). Proofs never need them. The scan runs on the
masked text (see `leantext.mask`), so comments and strings cannot hide a
command and cannot trigger a false alarm either.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mathagent.verify.leantext import line_of, mask

_B = r"(?<![\w.'!?#])"  # not inside a longer name
_E = r"(?![\w'!?])"


def _word(word: str) -> str:
    return _B + re.escape(word) + _E


# (reason name, pattern). The name is what shows up as `banned:<name>`.
_BANNED: list[tuple[str, str]] = [
    ("axiom", _word("axiom")),
    ("#exit", r"#exit" + _E),
    ("#eval", r"#eval"),
    ("#guard_msgs", r"#guard_msgs"),
    ("set_option debug", _word("set_option") + r"\s+debug\."),
    ("set_option bootstrap", _word("set_option") + r"\s+bootstrap\."),
    ("run_cmd", _word("run_cmd")),
    ("run_tac", _word("run_tac")),
    ("run_elab", _word("run_elab")),
    ("run_meta", _word("run_meta")),
    ("by_elab", _word("by_elab")),
    ("elab", _word("elab")),
    ("elab_rules", _word("elab_rules")),
    ("macro", _word("macro")),
    ("macro_rules", _word("macro_rules")),
    ("syntax", _word("syntax")),
    ("declare_syntax_cat", _word("declare_syntax_cat")),
    ("notation", _word("notation")),
    ("infix", _word("infix")),
    ("infixl", _word("infixl")),
    ("infixr", _word("infixr")),
    ("prefix", _word("prefix")),
    ("postfix", _word("postfix")),
    ("local instance", _word("local") + r"\s+instance" + _E),
    ("local instance", r"attribute\s*\[\s*local\s+instance" + _E),
    ("implemented_by", _word("implemented_by")),
    ("extern", _word("extern")),
    ("unsafe", _word("unsafe")),
    ("initialize", _word("initialize")),
    ("builtin_initialize", _word("builtin_initialize")),
    ("simproc", _word("simproc")),
    ("dsimproc", _word("dsimproc")),
    ("elaborator attribute", r"@\[[^\]]*" + _B + r"(?:command_elab|term_elab|tactic|builtin_\w+|delab|app_unexpander|init|macro)" + _E),
    ("meta programming", r"Lean\.(?:Elab|Meta|Environment|Kernel|Compiler)\b"),
    ("meta programming", _word("addDecl")),
    ("meta programming", _word("addAndCompile")),
]
_NATIVE = ("native_decide", _word("native_decide"))


@dataclass(frozen=True)
class BannedUse:
    """One banned command found in submitted text."""

    command: str
    line: int  # 1-based, within the scanned text
    column: int  # 0-based, like Lean's positions

    @property
    def reason(self) -> str:
        return f"banned:{self.command}"


def find_banned(source: str, *, allow_native: bool = False) -> list[BannedUse]:
    """Every banned command in `source`, in order, one per place."""
    masked = mask(source)
    rules = list(_BANNED)
    if not allow_native:
        rules.append(_NATIVE)
    hits: dict[int, BannedUse] = {}
    for command, pattern in rules:
        for m in re.finditer(pattern, masked):
            if m.start() in hits:
                continue
            line = line_of(masked, m.start())
            column = m.start() - (masked.rfind("\n", 0, m.start()) + 1)
            hits[m.start()] = BannedUse(command=command, line=line, column=column)
    return [hits[k] for k in sorted(hits)]
