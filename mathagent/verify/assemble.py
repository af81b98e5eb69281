"""Turn a task into the Lean file that is actually run, plus what to trust in it.

With a formal statement (`proof` or `full_code` tasks) the file has four parts:

1. the task's header (trusted: it is the task's, never the submission's);
2. a *reference*: the asked statement re-declared as an axiom under a secret
   name, elaborated right after the header, before any submitted text can
   change the context;
3. the submission: statement + proof, or everything after the header line of
   a submitted file (untrusted, audited);
4. the verifier's checks, appended after everything the submission wrote: a
   theorem whose type is the reference's type and whose proof is the target
   theorem itself (so the kernel confirms the statement is exactly the one
   asked), `#print axioms` of it, and a type check of each allowed axiom.

A whole file without a statement is untrusted from its first byte. It runs
with a `#print axioms` check for each declaration Lean says it makes (see
`declarations`); to spare a run, the first one carries checks for the
declarations it seems to make, kept only when they cover Lean's list (see
`verifier._DeclarationChecks`).

Only messages positioned on the lines of part 4 are trusted as check results;
the secret name stops a submission from referring to or faking them.
"""

from __future__ import annotations

import bisect
import functools
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, replace

from mathagent.verify import verdict as codes
from mathagent.verify.declarations import Declaration
from mathagent.verify.leantext import (
    Statement,
    count_lines,
    header_namespaces,
    identifier,
    imports_modules,
    join_proof,
    module_header,
    module_header_end,
    parse_statement,
)
from mathagent.verify.lexer import Kind, Token, code_tokens, tokenize
from mathagent.verify.tasks import VerifyTask
from mathagent.vocabulary import Reason

HEADER, REFERENCE, SUBMISSION, CHECK = "header", "reference", "submission", "check"

# The allowed axioms' types, spelled with absolute names and core syntax only.
CANONICAL_AXIOMS = {
    "propext": "∀ {a b : Prop}, _root_.Iff a b → @_root_.Eq Prop a b",
    "Quot.sound": (
        "∀ {α : Sort _} {r : α → α → Prop} {a b : α}, r a b → "
        "@_root_.Eq (_root_.Quot r) (_root_.Quot.mk r a) (_root_.Quot.mk r b)"
    ),
    "Classical.choice": "∀ {α : Sort _}, _root_.Nonempty α → α",
}


@dataclass(frozen=True)
class Segment:
    """A run of assembled lines that comes from one place."""

    start: int  # first assembled line, 1-based
    count: int
    origin: str  # header | reference | submission | check
    submitted_start: int | None  # its first line in `Assembled.submitted` (None: not submitted text)


@dataclass(frozen=True)
class Target:
    """A constant the checks look at, and where their answers will appear."""

    reported: str  # the constant's name exactly as `#print axioms` reports it
    axioms_line: int  # assembled line of `#print axioms`
    type_line: int | None = None  # assembled line of the statement check (None: whole-file mode)
    label: str = ""  # the name a person knows it by

    @property
    def name(self) -> str:
        return self.label or self.reported


@dataclass(frozen=True)
class Assembled:
    """The Lean source to run and the map back to what was submitted."""

    text: str
    submitted: str  # what a person reads: the header and the submission
    segments: tuple[Segment, ...]
    targets: tuple[Target, ...] = ()
    canonical_lines: tuple[tuple[str, int], ...] = ()  # (allowed axiom, line of its type check)
    # the same checks right after the imports, before any text of the header or the submission
    # (see `_before_any_text`): what is imported, as imported
    canonical_before: tuple[tuple[str, int], ...] = ()
    warm_key: str = ""  # the prefix a warm server keeps elaborated (the header)
    whole_file: bool = False  # targets come from the file's own declarations (second run)
    private_names: bool = True  # the axiom reports may set `pp.privateNames` (see `print_axioms`)
    checked: tuple[tuple[tuple[str, ...], int], ...] = ()  # whole files: (name checked, line of its check)

    @functools.cached_property
    def check_start(self) -> int:
        return next((s.start for s in self.segments if s.origin == CHECK), count_lines(self.text) + 2)

    @functools.cached_property
    def _starts(self) -> list[int]:
        return [seg.start for seg in self.segments]

    def _segment(self, line: int) -> Segment | None:
        # a file with thousands of checks has thousands of segments, and every message asks
        index = bisect.bisect_right(self._starts, line) - 1
        if index >= 0:
            seg = self.segments[index]
            if seg.start <= line < seg.start + seg.count:
                return seg
        return None

    def origin(self, line: int) -> str:
        """Which part an assembled line belongs to: header, reference, submission or check."""
        seg = self._segment(line)
        if seg is not None:
            return seg.origin
        return CHECK if line >= self.check_start else SUBMISSION

    def submitted_line(self, line: int) -> int:
        """Line in `submitted` for a line of the assembled file (0 when it is not submitted text)."""
        seg = self._segment(line)
        if seg is None or seg.submitted_start is None:
            return 0
        return seg.submitted_start + (line - seg.start)


class Rejection(Exception):
    """The text fails a check that needs no Lean run."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class BadTask(Exception):
    """The task itself is malformed (not the submission's fault)."""


class _Builder:
    """Appends whole lines and records where each part lands."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.segments: list[Segment] = []
        self.line = 1

    def add(self, text: str, origin: str, submitted_start: int | None = None) -> int:
        """Append `text` (a newline is added if missing); return its first line."""
        text = ensure_newline(text)
        first = self.line
        lines = count_lines(text)
        last = self.segments[-1] if self.segments else None
        if lines and last is not None and last.origin == origin == CHECK and last.start + last.count == first:
            self.segments[-1] = replace(last, count=last.count + lines)  # one segment for all the checks
        elif lines:
            self.segments.append(Segment(first, lines, origin, submitted_start))
        self.parts.append(text)
        self.line += lines
        return first

    @property
    def text(self) -> str:
        return "".join(self.parts)


def assemble(task: VerifyTask, header: str, *, nonce: str | None = None, private_names: bool = True) -> Assembled:
    """Build the file to run for `task` with `header` (the resolved header text).

    `private_names`: the Lean knows `pp.privateNames` (see `print_axioms`).
    Raises BadTask for an unusable statement and Rejection for a whole-file
    submission that changed the header or the statement.
    """
    if task.formal_statement is None:
        if task.full_code is None:
            raise BadTask("nothing to check: the task has neither `formal_statement` nor `full_code`")
        return replace(assemble_file(task.full_code), private_names=private_names)
    try:
        statement = parse_statement(task.formal_statement)
    except ValueError as exc:
        raise BadTask(str(exc)) from exc
    nonce = nonce or secrets.token_hex(8)
    header = ensure_newline(header)
    if task.proof is not None:
        body, body_line, submitted = join_proof(statement, task.proof), count_lines(header) + 1, None
    elif task.full_code is not None:
        body, body_line = split_full_code(task.full_code, header, statement)
        submitted = task.full_code
    else:
        raise BadTask("no `proof` or `full_code` to check against the statement")
    return _assemble_statement(header, body, body_line, submitted, statement, nonce, private_names)


def assemble_statement_only(formal_statement: str, header: str) -> Assembled:
    """The header and the statement declared as an axiom: Lean elaborates the
    statement without needing a proof (or `sorry`). Raises BadTask when it
    is not a theorem statement at all."""
    try:
        statement = parse_statement(formal_statement)
    except ValueError as exc:
        raise BadTask(str(exc)) from exc
    out = _Builder()
    out.add(ensure_newline(header), HEADER, 1)
    out.add(reference_declaration(statement, f"mathagent_statement_{secrets.token_hex(8)}"), SUBMISSION, None)
    return Assembled(text=out.text, submitted=out.text, segments=tuple(out.segments), warm_key=ensure_newline(header))


def ensure_newline(text: str) -> str:
    return text if not text or text.endswith("\n") else text + "\n"


def reference_declaration(statement: Statement, ref_name: str) -> str:
    """The asked statement as an axiom named `_root_.<ref_name>`, elaborated in
    the context the theorem itself would be: its `open ... in` prefix, and
    the namespace a dotted theorem name opens (`theorem N.foo` elaborates
    inside `namespace N`)."""
    decl = f"{statement.prefix}axiom _root_.{ref_name}{statement.universes}{statement.signature}\n"
    namespace = statement.name_parts[:-1]
    if namespace and not statement.rooted:
        spelled = identifier(namespace)
        decl = f"namespace {spelled}\n{decl}end {spelled}\n"
    return decl


def report_options(*, private_names: bool = True) -> list[str]:
    """The options under which `#print axioms` names every axiom by its full name.

    Lean prints a constant the short way it could be written at that point of
    the file: after `open Unsafe` (or inside a namespace a header left open)
    `Unsafe.propext` prints as `propext`, and a private `propext` always does.
    These make the report name each axiom by its full name, `_private` prefix
    included; universe levels stay out of it (`pp.all` would add them).
    """
    options = ["set_option pp.fullNames true", "set_option pp.universes false"]
    return [*options, "set_option pp.privateNames true"] if private_names else options


def print_axioms(constant: str, *, private_names: bool = True) -> str:
    """`#print axioms` of `_root_.<constant>` (Lean source) under `report_options`,
    each applied to this command alone (`set_option ... in`): whatever the submission
    opened or set before, even a dangling `in` of its own, cannot change them."""
    options = "".join(f"{o} in " for o in report_options(private_names=private_names))
    return f"{options}#print axioms _root_.{constant}"


def _assemble_statement(
    header: str,
    body: str,
    body_line: int,
    submitted: str | None,
    statement: Statement,
    nonce: str,
    private_names: bool,
) -> Assembled:
    ref_name = f"mathagent_ref_{nonce}"
    check_name = f"mathagent_check_{nonce}"
    if statement.rooted:
        target = statement.name
    else:
        target = "_root_." + ".".join(filter(None, (identifier(header_namespaces(header)), statement.name)))
    out = _Builder()
    before, _ = _add_header(out, header, HEADER)
    warm_key = out.text
    out.add(reference_declaration(statement, ref_name), REFERENCE)
    out.add(body, SUBMISSION, body_line)
    out.add("\n", SUBMISSION)  # a blank line between what was submitted and the checks
    type_line = out.add(f"theorem _root_.{check_name} : type_of% @_root_.{ref_name} := @{target}", CHECK)
    axioms_line = out.add(print_axioms(check_name, private_names=private_names), CHECK)
    canonical = _add_canonical_checks(out) if imports_modules(header) else ()
    return Assembled(
        text=out.text,
        submitted=submitted if submitted is not None else header + ensure_newline(body),
        segments=tuple(out.segments),
        targets=(Target(reported=check_name, axioms_line=axioms_line, type_line=type_line, label=statement.name),),
        canonical_lines=canonical,
        canonical_before=before,
        warm_key=warm_key,
        private_names=private_names,
    )


def _add_header(out: _Builder, header: str, origin: str) -> tuple[tuple[tuple[str, int], ...], str]:
    """Add `header` (a task's header, or a whole file) with the allowed axioms' type
    checks right after its imports; their lines (none where nothing is imported),
    and the text so far once they are added ("" with none).

    The checks at the end of the file (`_add_canonical_checks`) see what the header
    and the submission declared; these see the imports alone. A `#check` is only
    elaborated, and the elaborator mends a type mismatch with any coercion in scope:
    a submission that declares one from an impostor axiom's type to the real one
    passed the checks at the end. Here no text of the header or the submission has
    run yet."""
    split = _before_any_text(header) if imports_modules(header) else None
    if split is None:
        out.add(header, origin, 1)
        return (), ""
    imports, rest = split
    out.add(imports, origin, 1)
    before, so_far = _add_canonical_checks(out), out.text
    if rest:
        out.add(rest, origin, 1 + count_lines(imports))
    return before, so_far


def _before_any_text(text: str) -> tuple[str, str] | None:
    """`text` cut after its import block, where a line of its own may go: None when
    the block's last line runs on into a command or into a comment that it does not
    close (a check put there would be read as part of it)."""
    imports = module_header(text)
    if not imports:
        return None
    code_end, line_end = module_header_end(text), len(imports) - 1  # (the newline, when there is one)
    for tok in tokenize(text[code_end:]):
        if tok.start + code_end > line_end:
            break
        if tok.kind is not Kind.COMMENT or tok.end + code_end > line_end:
            return None
    return imports, text[len(imports) :]


def _add_canonical_checks(out: _Builder) -> tuple[tuple[str, int], ...]:
    # Only where modules are imported: a prelude file has no `Iff` to state
    # them with, and there the real axioms cannot exist anyway.
    return tuple(
        (name, out.add(f"#check (@_root_.id ({type_}) @_root_.{name})", CHECK))
        for name, type_ in CANONICAL_AXIOMS.items()
    )


# Ends the submitted file, before any check. Lean's server re-elaborates the command an
# edit touches, and appending text at the end of the file touches the last command (its
# trailing whitespace runs to the end): without a fence a second version elaborated the
# file's last theorem again, doubling the cost of a one-theorem file. It also takes up a
# dangling `... in` the file may end with, so the checks' options after it hold. An empty
# anonymous section is valid wherever a command may start and declares nothing.
_REUSE_FENCE = "section\nend\n"


def assemble_file(source: str) -> Assembled:
    """A whole file, as it is, for the first run (which learns its declarations)."""
    out = _Builder()
    before, imported = _add_header(out, source, SUBMISSION)
    out.add("\n", SUBMISSION)
    out.add(_REUSE_FENCE, CHECK)
    return Assembled(
        text=out.text,
        submitted=source,
        segments=tuple(out.segments),
        warm_key=imported or module_header(source),  # what a warm server keeps elaborated
        whole_file=True,
        canonical_before=before,
    )


def with_declaration_checks(assembled: Assembled, names: Iterable[tuple[str, ...]]) -> Assembled:
    """The whole file (as `assemble_file` made it) with a `#print axioms` check for each
    name (full names, as components). Which of them are the file's declarations is
    only known once Lean has run: see `bind_declarations`."""
    out = _Builder()
    out.parts, out.segments, out.line = [assembled.text], list(assembled.segments), count_lines(assembled.text) + 1
    # Set once, not per check (`set_option ... in` on each of thousands of checks doubled
    # Lean's time and memory): after the fence, where nothing the submission wrote follows.
    out.add("\n".join(report_options(private_names=assembled.private_names)), CHECK)
    checked = tuple(
        (parts, out.add(f"#print axioms _root_.{identifier(parts)}", CHECK)) for parts in dict.fromkeys(names)
    )
    canonical = _add_canonical_checks(out) if imports_modules(assembled.submitted) else ()
    return replace(assembled, text=out.text, segments=tuple(out.segments), checked=checked, canonical_lines=canonical)


def bind_declarations(assembled: Assembled, declarations: Iterable[Declaration]) -> Assembled | None:
    """`assembled` with a target for every declaration Lean reported, each bound to
    the check of its name; None when one of them has no check (then the file must
    be checked again with Lean's own list)."""
    lines = dict(assembled.checked)
    targets = []
    for d in declarations:
        line = lines.get(d.source_name)
        if line is None:
            return None
        targets.append(Target(reported=d.name, axioms_line=line, label=".".join(d.source_name)))
    return replace(assembled, targets=tuple(targets))


# ---------------------------------------------------------------- full_code


def split_full_code(full_code: str, header: str, statement: Statement) -> tuple[str, int]:
    """What follows the header in a submitted file, and the line it starts on.

    The file must start with the task's header (token by token: spacing and
    comments may differ), the header's last line must end there (nothing
    after it but a line comment), and the next thing must be the asked
    statement. The header itself is never taken from the file: the task's
    own header is what runs.
    """
    code = list(code_tokens(full_code))
    want = [header[t.start : t.end] for t in code_tokens(header)]
    if not want:
        if not starts_with_statement(full_code, statement):
            raise Rejection(
                codes.STATEMENT_CHANGED, f"the submitted file does not state `{statement.name}` exactly as asked"
            )
        return full_code, 1
    got = [full_code[t.start : t.end] for t in code[: len(want)]]
    if got != want:
        raise Rejection(codes.HEADER_CHANGED, "the submitted file does not start with the task's header")
    header_end = code[len(want) - 1].end if want else 0
    line_end = full_code.find("\n", header_end)
    cut = len(full_code) if line_end == -1 else line_end + 1
    if want and not _only_line_comment(full_code, header_end, cut):
        raise Rejection(
            codes.HEADER_CHANGED, "the header's last line goes on after the header: start the proof on a new line"
        )
    body = full_code[cut:]
    if not starts_with_statement(body, statement):
        raise Rejection(
            codes.STATEMENT_CHANGED,
            f"the submitted file does not state `{statement.name}` exactly as asked right after the header",
        )
    return body, count_lines(full_code[:cut]) + 1


def _only_line_comment(text: str, start: int, end: int) -> bool:
    for tok in tokenize(text[start:end]):
        return tok.kind is Kind.COMMENT and text.startswith("--", start + tok.start)
    return True


def starts_with_statement(body: str, statement: Statement) -> bool:
    """Does `body` open with the statement, token for token up to its `:=`
    (comments and spacing aside, `lemma` for `theorem`)?"""
    wanted = _statement_tokens(statement.text, statement.head)
    got: list[str] = []
    for tok in code_tokens(body):
        if len(got) == len(wanted):
            break
        got.append(_spelling(body, tok))
    return bool(wanted) and got == wanted


def _statement_tokens(text: str, head: str) -> list[str]:
    words = [_spelling(text, t) for t in code_tokens(head)]
    while words and words[-1] != ":=":  # the head may end with `by`; compare up to `:=`
        words.pop()
    return words


def _spelling(text: str, tok: Token) -> str:
    word = text[tok.start : tok.end]
    return "theorem" if tok.is_word("lemma") else word
