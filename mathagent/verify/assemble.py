"""Turn a task into the Lean file that is actually run, plus what to trust in it.

The file has four parts:

1. the task's header;
2. a *reference*: the asked statement, re-declared as an axiom under a secret
   name, elaborated right after the header, before any submitted text can
   change the context;
3. the submission (statement + proof, or the whole submitted file minus its
   header);
4. the verifier's checks, appended after everything the submission wrote: a
   theorem whose type is the reference's type and whose proof is the target
   theorem itself (so the kernel confirms the statement is exactly the one
   asked), and `#print axioms` of it.

Only messages positioned on the lines of part 4 are trusted as check results;
the secret name stops a submission from referring to or faking them.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from mathagent.verify.leantext import (
    Statement,
    count_lines,
    declared_theorems,
    join_proof,
    mask,
    namespace_at_end,
    normalize_ws,
    parse_statement,
    qualify,
)
from mathagent.verify.tasks import VerifyTask


@dataclass(frozen=True)
class Target:
    """A theorem the checks look at, and where their answers will appear."""

    name: str  # full name in the environment
    axioms_line: int  # assembled line of `#print axioms`
    type_line: int | None  # assembled line of the statement check (None: whole-file mode)


@dataclass(frozen=True)
class Assembled:
    """The Lean source to run and the map back to what was submitted."""

    text: str
    submitted: str  # header + submission, as a person would read it
    untrusted_from: int  # first line of `submitted` written by the submission
    ref_start: int  # first assembled line of the reference (0: none)
    ref_lines: int
    check_start: int  # first assembled line of the verifier's checks
    targets: list[Target]
    warm_key: str = ""  # the prefix a warm server keeps elaborated (the header)

    def origin(self, line: int) -> str:
        """Which part an assembled line belongs to: header, reference, submission or check."""
        if line >= self.check_start:
            return "check"
        if self.ref_start and self.ref_start <= line < self.ref_start + self.ref_lines:
            return "reference"
        if self.ref_start and line < self.ref_start:
            return "header"
        return "submission"

    def submitted_line(self, line: int) -> int:
        """Line in `submitted` for a line of the assembled file."""
        if self.ref_start and line >= self.ref_start + self.ref_lines:
            return line - self.ref_lines
        return line


class Rejection(Exception):
    """The text fails a check that needs no Lean run."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class BadTask(Exception):
    """The task itself is malformed (not the submission's fault)."""


def assemble(task: VerifyTask, header: str, *, nonce: str | None = None) -> Assembled:
    """Build the file to run for `task` with `header` (the resolved header text).

    Raises BadTask for an unusable statement and Rejection for a whole-file
    submission that changed the header or the statement.
    """
    if task.formal_statement is None:
        if task.full_code is None:
            raise BadTask("nothing to check: the task has neither `formal_statement` nor `full_code`")
        return _assemble_file(task.full_code)
    try:
        statement = parse_statement(task.formal_statement)
    except ValueError as exc:
        raise BadTask(str(exc)) from exc
    nonce = nonce or secrets.token_hex(8)
    if task.proof is not None:
        head = _ends_with_newline(header)
        body = join_proof(statement, task.proof)
    elif task.full_code is not None:
        head, body = _split_full_code(task.full_code, header, statement)
    else:
        raise BadTask("no `proof` or `full_code` to check against the statement")
    return _assemble_statement(head, body, statement, header, nonce)


def assemble_statement_only(formal_statement: str, header: str) -> Assembled:
    """The header and the statement declared as an axiom: Lean elaborates the
    statement without needing a proof (or `sorry`). Raises BadTask when it
    is not a theorem statement at all."""
    try:
        statement = parse_statement(formal_statement)
    except ValueError as exc:
        raise BadTask(str(exc)) from exc
    head = _ends_with_newline(header)
    body = f"axiom _root_.mathagent_statement_{secrets.token_hex(8)}{statement.signature}\n"
    return Assembled(
        text=head + body,
        submitted=head + body,
        untrusted_from=count_lines(head) + 1,
        ref_start=0,
        ref_lines=0,
        check_start=count_lines(head + body) + 10,
        targets=[],
        warm_key=head,
    )


def _ends_with_newline(text: str) -> str:
    return text if not text or text.endswith("\n") else text + "\n"


def _assemble_statement(head: str, body: str, statement: Statement, header: str, nonce: str) -> Assembled:
    ref_name = f"mathagent_ref_{nonce}"
    reference = f"axiom _root_.{ref_name}{statement.signature}\n"
    target = qualify(statement.name, namespace_at_end(header))
    prefix = head + reference + body
    check_start = count_lines(prefix) + 3
    check_name = f"mathagent_check_{nonce}"
    checks = (
        f"\n\ntheorem _root_.{check_name} : type_of% @_root_.{ref_name} := @_root_.{target}\n"
        f"#print axioms _root_.{check_name}\n"
    )
    return Assembled(
        text=prefix + checks,
        submitted=head + body,
        untrusted_from=count_lines(head) + 1,
        ref_start=count_lines(head) + 1,
        ref_lines=count_lines(reference),
        check_start=check_start,
        targets=[Target(name=target, axioms_line=check_start + 1, type_line=check_start)],
        warm_key=head,
    )


def _assemble_file(source: str) -> Assembled:
    theorems = declared_theorems(source)
    body = _ends_with_newline(source)
    check_start = count_lines(body) + 3
    lines: list[str] = []
    targets: list[Target] = []
    for i, (name, offset) in enumerate(theorems):
        # a private name is mangled, so only its short name resolves
        private = re.search(r"\bprivate\s+$", mask(source[:offset]))
        ref = name if private else f"_root_.{name}"
        lines.append(f"#print axioms {ref}")
        targets.append(Target(name=name, axioms_line=check_start + i, type_line=None))
    checks = "\n\n" + "\n".join(lines) + ("\n" if lines else "")
    return Assembled(
        text=body + checks,
        submitted=source,
        untrusted_from=1,
        ref_start=0,
        ref_lines=0,
        check_start=check_start,
        targets=targets,
        warm_key=module_header(source),
    )


_MODULE_HEADER = re.compile(r"(?:\s|--[^\n]*\n|/-.*?-/)*(?:prelude\b[^\n]*\n)?(?:(?:\s|--[^\n]*\n|/-.*?-/)*import\s+[^\n]+\n)*", re.S)


def module_header(text: str) -> str:
    """The `prelude`/`import` block a whole file starts with."""
    match = _MODULE_HEADER.match(text)
    return match.group(0) if match else ""


def _split_full_code(full_code: str, header: str, statement: Statement) -> tuple[str, str]:
    """Split a whole-file submission into (its header, the rest).

    The file must start with the task's header (whitespace aside) and the next
    thing after it, comments aside, must be the asked statement.
    """
    end = _match_prefix_ignoring_ws(full_code, header)
    if end is None:
        raise Rejection("header_changed", "the submitted file does not start with the task's header")
    line_end = full_code.find("\n", end)
    cut = len(full_code) if line_end == -1 else line_end + 1
    head, rest = full_code[:cut], full_code[cut:]
    if line_end == -1:
        head += "\n"
    if not _starts_with_statement(rest, statement):
        raise Rejection(
            "statement_changed",
            f"the submitted file does not state `{statement.name}` exactly as asked right after the header",
        )
    return head, rest


def _match_prefix_ignoring_ws(text: str, prefix: str) -> int | None:
    """Offset in `text` just past `prefix`, token by token: runs of whitespace may
    differ in length but not vanish or appear (that would join or split tokens)."""
    i = 0
    for n, token in enumerate(re.finditer(r"\S+", prefix)):
        gap = i
        while i < len(text) and text[i].isspace():
            i += 1
        if n > 0 and i == gap:
            return None
        if not text.startswith(token.group(), i):
            return None
        i += len(token.group())
    return i


def _starts_with_statement(rest: str, statement: Statement) -> bool:
    """Does `rest` open with the statement, up to its `:=`, comments and spacing aside?"""
    masked_rest = mask(rest, literals=False)
    start = len(masked_rest) - len(masked_rest.lstrip())
    wanted = _canonical(mask(statement.text, literals=False)[statement.decl_start :])
    wanted = wanted[: wanted.rfind(":=") + 2]
    got = _canonical(masked_rest[start:])
    return got.startswith(wanted) and re.match(r"(?:theorem|lemma)\b", masked_rest[start:]) is not None


def _canonical(text: str) -> str:
    return re.sub(r"^lemma\b", "theorem", normalize_ws(text))
