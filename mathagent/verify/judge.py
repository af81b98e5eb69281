"""From Lean's run to a verdict. The one place that decides "verified".

A proof is verified only when every condition holds: Lean reported no error,
no `sorry`, the verifier's own appended checks reported (on their own lines,
exactly once each, naming exactly the constant asked about), the statement
check passed, every axiom the target depends on is allowed, and no allowed
axiom is an impostor (declared by the checked file itself, by a module other
than Lean's own `Init`, or with another type than the real one). Anything the
submission printed is only ever evidence against it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from mathagent.verify import verdict as codes
from mathagent.verify.assemble import (
    CANONICAL_AXIOMS,
    CHECK,
    HEADER,
    REFERENCE,
    SUBMISSION,
    Assembled,
    Target,
)
from mathagent.verify.declarations import Declaration, FileReport, split_name
from mathagent.verify.kernel_builtins import declared_builtins
from mathagent.verify.messages import LeanMessage, parse_output
from mathagent.verify.process import OUTPUT_CAP_BYTES
from mathagent.verify.verdict import Diagnostic, Verdict, VerdictKind
from mathagent.vocabulary import Reason, SandboxKind

DEFAULT_AXIOMS = ("propext", "Quot.sound", "Classical.choice")

_SORRY_WARNING = re.compile(r"declaration uses .sorry.")
_UNKNOWN = re.compile(r"unknown (?:identifier|constant)", re.I)
_NO_AXIOMS = "does not depend on any axioms"
_SOME_AXIOMS = "depends on axioms: ["
_ROOT = "_root_."


@dataclass(frozen=True)
class RunOutcome:
    """What happened when Lean ran: its output and how it ended."""

    stdout: str
    stderr: str
    returncode: int | None
    time_s: float
    sandbox: SandboxKind
    timed_out: bool = False
    memory_exceeded: bool = False
    memory_mb: int | None = None
    output_exceeded: bool = False  # Lean printed more than `process.OUTPUT_CAP_BYTES` and was stopped
    report: FileReport = FileReport()  # what Lean's declaration report says of the file

    @property
    def declarations(self) -> tuple[Declaration, ...] | None:
        """What the file declared, as Lean reported it."""
        return self.report.declarations

    @property
    def definitions(self) -> tuple[Declaration, ...] | None:
        """Every constant the file defines, constructors and all types of a `mutual` block included."""
        return self.report.definitions

    @property
    def axiom_modules(self) -> Mapping[str, frozenset[str]] | None:
        """The modules that declare the allowed axioms the file refers to; None where Lean names no modules."""
        return self.report.axiom_modules


@dataclass(frozen=True)
class AxiomPolicy:
    """Which axioms a proof may use. `trusted` are the ones the user named
    explicitly: those may be declared by the task's header (the user vouches
    for it); the defaults must come from outside the checked file."""

    allowed: frozenset[str]
    trusted: frozenset[str] = frozenset()


def judge_run(task_id: str, assembled: Assembled, run: RunOutcome, policy: AxiomPolicy | Iterable[str]) -> Verdict:
    """The verdict for one Lean run of `assembled`."""
    if not isinstance(policy, AxiomPolicy):
        policy = AxiomPolicy(allowed=frozenset(policy))
    output = parse_output(run.stdout)
    diagnostics = [
        _diagnostic(m, assembled) for m in output.messages if assembled.origin(m.line) in (HEADER, SUBMISSION)
    ]
    stopped = _stopped(run, output.messages)
    if stopped is not None:
        # Lean did not finish its run: whatever the checks say is only an echo of that.
        kind, reason, note = stopped
        return _verdict(task_id, kind, [(reason, note)], diagnostics, [], run)

    findings: list[tuple[Reason, str]] = []  # (reason code, note for people)
    by_line: dict[int, list[LeanMessage]] = {}
    check_lines = {t.axioms_line for t in assembled.targets} | {t.type_line for t in assembled.targets if t.type_line}
    check_lines |= {line for _, line in (*assembled.canonical_lines, *assembled.canonical_before)}
    # checks of names a whole file only seemed to declare (see `verifier._DeclarationChecks`)
    guessed_lines = {line for _, line in assembled.checked} - check_lines
    for msg in output.messages:
        origin = assembled.origin(msg.line)
        if (msg.kind == "hasSorry" or _SORRY_WARNING.search(msg.text)) and origin in (SUBMISSION, CHECK):
            # a sorry in the task's own header is the task's business; the
            # axiom check still catches the proof using it
            findings.append((codes.SORRY, "the proof uses `sorry`"))
        if origin == CHECK and msg.line in check_lines:
            by_line.setdefault(msg.line, []).append(msg)
        elif msg.severity != "error":
            continue
        elif origin == REFERENCE:
            findings.append((codes.BAD_STATEMENT, f"the formal statement does not elaborate: {_first_line(msg.text)}"))
        elif origin == HEADER:
            findings.append((codes.BAD_HEADER, f"the header does not compile: {_first_line(msg.text)}"))
        elif msg.line in guessed_lines:
            findings.append((codes.CHECKS_MISSING, f"the verifier's own check failed: {_first_line(msg.text)}"))
        else:
            line = assembled.submitted_line(msg.line)
            where = f"at line {line}" if line else "at the end of the file"
            findings.append((codes.LEAN_ERROR, f"Lean error {where}: {_first_line(msg.text)}"))

    users: dict[str, list[str]] = {}  # axiom -> the checked constants that depend on it
    for target in assembled.targets:
        target_findings, target_axioms = _read_checks(target, by_line)
        findings += target_findings
        for name in target_axioms:
            users.setdefault(name, []).append(target.name)
    declarations, definitions = run.declarations, run.definitions
    canonical_failed = any(
        m.severity == "error"
        for _, line in (*assembled.canonical_lines, *assembled.canonical_before)
        for m in by_line.get(line, [])
    )
    if not assembled.targets and not (assembled.whole_file and canonical_failed):
        # (a whole file whose imports fail the axioms' checks has no list of declarations to target)
        findings.append((codes.THEOREM_MISSING, "no named declaration to check (an `example` cannot be audited)"))
    if canonical_failed:
        declarations = definitions = None  # a one-shot Lean writes no list after an error: judge both pools alike

    axioms = sorted(users)
    findings += _axiom_findings(users, assembled, definitions or declarations or (), by_line, policy, run.axiom_modules)
    for origin, names in declared_builtins(assembled, definitions or declarations or ()).items():
        who = "the task's header" if origin == HEADER else "the file"
        note = (
            "by its own rules whatever their definitions say; only an imported module may declare them"
            if len(names) > 1
            else "by its own rules whatever its definition says; only an imported module may declare it"
        )
        findings.append(
            (
                codes.KERNEL_BUILTIN,
                f"{who} declares {_listing(names, limit=len(names))}, which the kernel computes {note}",
            )
        )

    if declarations is None and not findings:
        # Without Lean's list of what the file declared, neither an impostor axiom nor a
        # kernel builtin can be ruled out.
        why = (
            " (the imports lack the allowed axioms, or theirs fail the check of their types)"
            if canonical_failed
            else ""
        )
        findings.append((codes.CHECKS_MISSING, f"Lean did not report the file's declarations{why}"))

    reasons = {r for r, _ in findings}
    if reasons & {codes.LEAN_ERROR, codes.BAD_HEADER, codes.BAD_STATEMENT}:
        # After an error the checks only echo it (a theorem that failed to
        # elaborate is "missing"); keep the findings that say more.
        findings = [(r, n) for r, n in findings if r not in _ECHOES]
    if reasons & {codes.BAD_HEADER, codes.BAD_STATEMENT}:
        kind = VerdictKind.ERROR  # the task is broken, not the proof
    elif findings:
        kind = VerdictKind.REJECTED
    elif not all(by_line.get(t.axioms_line) for t in assembled.targets):
        # Defensive: never verify without the appended checks' answers.
        kind = VerdictKind.REJECTED
        findings.append((codes.CHECKS_MISSING, "the verifier's own checks produced no result"))
    else:
        kind = VerdictKind.VERIFIED
    return _verdict(task_id, kind, findings, diagnostics, axioms, run)


_ECHOES = {codes.THEOREM_MISSING, codes.STATEMENT_CHANGED, codes.CHECKS_MISSING}


def _axiom_findings(
    users: dict[str, list[str]],
    assembled: Assembled,
    declarations: Iterable[Declaration],
    by_line: dict[int, list[LeanMessage]],
    policy: AxiomPolicy,
    modules: Mapping[str, frozenset[str]] | None,
) -> list[tuple[Reason, str]]:
    """What is wrong with the axioms the checked constants depend on.

    Names are full names (see `assemble.print_axioms`), compared with the full
    names Lean gave the file's own declarations: an allowed axiom is the real
    one only when the file (header included) does not declare it and, where
    modules are imported, Lean's own `Init` declares it (`modules`: where Lean's
    data names modules) and the kernel confirmed it has the real axiom's type.
    """
    findings: list[tuple[Reason, str]] = []
    declared_in = {d.name: assembled.origin(d.line) for d in declarations}
    # A Lean without `pp.privateNames` prints a private constant by its plain name:
    # the file's private declarations, by that name, can then never pass for an allowed axiom.
    private_in = {
        d.source_name: assembled.origin(d.line) for d in declarations if d.private and not assembled.private_names
    }
    canonical = dict(assembled.canonical_lines)
    checked_before = dict(assembled.canonical_before)  # the same checks right after the imports
    for name in sorted(users):
        where = declared_in.get(name) or private_in.get(split_name(name))
        # a whole file has many declarations: say which ones
        used_by = f" (in {_listing(users[name])})" if assembled.whole_file else ""
        if name == "sorryAx":
            findings.append((codes.SORRY, f"the proof uses `sorry`{used_by}"))
        elif name not in policy.allowed:
            findings.append((codes.axiom_reason(name), f"depends on the axiom `{name}`, which is not allowed{used_by}"))
        elif where in (SUBMISSION, CHECK):
            findings.append(
                (codes.FAKE_AXIOM, f"the submission declares its own `{name}`; only the real axiom is allowed")
            )
        elif where == HEADER and (name not in policy.trusted or name not in declared_in):
            findings.append(
                (
                    codes.HEADER_AXIOM,
                    f"the task's header declares its own `{name}`; allow it explicitly (--allow-axiom "
                    f"{name}) if you trust it",
                )
            )
        elif where is None and name in policy.trusted:
            continue  # imported, and the user named it: theirs to vouch for
        elif where is None and name in canonical:
            before = by_line.get(checked_before.get(name, 0), [])
            if modules is not None and not _from_init(modules.get(name, frozenset())):
                # Another module's `Quot.sound` with the real type is no less an impostor: beside
                # a `Quot` of its own (an inductive type, whose constructor is injective) it proves False.
                found_in = _listing(sorted(modules.get(name, ())))
                findings.append(
                    (
                        codes.FAKE_AXIOM,
                        f"`{name}` is declared in {found_in or 'a module Lean did not name'}, not in Lean's own `Init`",
                    )
                )
            elif any(m.severity == "error" for m in (*by_line.get(canonical[name], []), *before)):
                findings.append((codes.FAKE_AXIOM, f"`{name}` does not have the type of the real axiom"))
            elif not before:  # the check after the imports did not answer (read as something else)
                findings.append(
                    (
                        codes.FAKE_AXIOM,
                        f"`{name}` could not be shown to have the type of the real axiom before the file's own "
                        "text (where nothing it declares can change the check)",
                    )
                )
        elif where is None and name in CANONICAL_AXIOMS:
            # Only an import can bring the real axiom, and nothing was imported
            # to check it against: never accept what cannot be identified.
            findings.append((codes.FAKE_AXIOM, f"`{name}` cannot be the real axiom: the file imports nothing"))
    return findings


def _from_init(modules: frozenset[str]) -> bool:
    """Are these modules (the ones Lean says declare a constant) all of Lean's own `Init`?"""
    return bool(modules) and all(m == "Init" or m.startswith("Init.") for m in modules)


def _listing(names: list[str], limit: int = 3) -> str:
    shown = ", ".join(f"`{n}`" for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _stopped(run: RunOutcome, messages: list[LeanMessage]) -> tuple[VerdictKind, Reason, str] | None:
    """(kind, reason, note) when Lean was killed or crashed, else None."""
    if run.timed_out:
        return VerdictKind.TIMEOUT, codes.TIMEOUT, f"Lean did not finish within the time limit ({run.time_s:.1f} s)"
    if run.memory_exceeded:
        return VerdictKind.ERROR, codes.MEMORY, f"Lean went over the memory cap ({run.memory_mb} MB)"
    if run.output_exceeded:
        cap = f"{OUTPUT_CAP_BYTES // 2**20} MiB"
        return VerdictKind.REJECTED, codes.TOO_LARGE, f"Lean's output went over the cap ({cap}) and was stopped"
    has_error = any(m.severity == "error" for m in messages)
    if run.returncode not in (0, 1) or (run.returncode == 1 and not has_error):
        return VerdictKind.ERROR, codes.CRASH, f"Lean exited abnormally (status {run.returncode}): {_tail(run.stderr)}"
    return None


def _read_checks(target: Target, by_line: dict[int, list[LeanMessage]]) -> tuple[list[tuple[Reason, str]], list[str]]:
    """Findings and axioms from the verifier's own check lines for one target."""
    type_errors = [m for m in by_line.get(target.type_line or 0, []) if m.severity == "error"]
    if any(_UNKNOWN.search(m.text) for m in type_errors):
        return [(codes.THEOREM_MISSING, f"no theorem named `{target.name}` was declared")], []
    if type_errors:
        return [(codes.STATEMENT_CHANGED, f"`{target.name}` does not have the statement asked for")], []
    messages = by_line.get(target.axioms_line, [])
    reports = [
        r for m in messages if m.severity == "information" and (r := report_axioms(m.text, target.reported)) is not None
    ]
    if len(reports) > 1:
        return [(codes.FORGED_OUTPUT, "more than one message claims to be the verifier's axiom check")], []
    if any(m.severity == "error" for m in messages):
        return [(codes.THEOREM_MISSING, f"`{target.name}` is not in the environment at the end of the file")], []
    if not reports:
        return [(codes.CHECKS_MISSING, "the verifier's own checks produced no result (was the file cut short?)")], []
    return [], reports[0]


def report_axioms(text: str, constant: str) -> list[str] | None:
    """The axioms in a `#print axioms` report about exactly `constant`, or None
    when `text` is not such a report."""
    text = text.strip()
    prefix = f"'{constant}' "
    if not text.startswith(prefix):
        return None
    rest = text[len(prefix) :]
    if rest == _NO_AXIOMS:
        return []
    if rest.startswith(_SOME_AXIOMS) and rest.endswith("]"):
        # Even in full, Lean writes `_root_.propext` where an opened `Foo.propext` would
        # shadow it; `_root_` only ever spells the root, no constant's name starts with it.
        return [n.removeprefix(_ROOT) for n in _split_names(rest[len(_SOME_AXIOMS) : -1])]
    return None


def _split_names(listing: str) -> list[str]:
    """`a, b.c, «d, e»` -> names; a comma inside «quotes» belongs to the name."""
    names: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in listing:
        if ch == "«":
            quoted = True
        elif ch == "»":
            quoted = False
        if ch == "," and not quoted:
            names.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    names.append("".join(current).strip())
    return [n for n in names if n]


def _verdict(
    task_id: str,
    kind: VerdictKind,
    findings: list[tuple[Reason, str]],
    diagnostics: list[Diagnostic],
    axioms: list[str],
    run: RunOutcome,
) -> Verdict:
    reasons = list(dict.fromkeys(r for r, _ in findings))
    notes = list(dict.fromkeys(n for _, n in findings))
    return Verdict(
        id=task_id,
        verdict=kind,
        reasons=reasons,
        message="; ".join(notes) if notes else "Lean accepted the proof; statement, sorry and axioms checked",
        diagnostics=diagnostics,
        axioms=axioms,
        time_s=round(run.time_s, 3),
        sandbox=run.sandbox,
    )


def _diagnostic(msg: LeanMessage, assembled: Assembled) -> Diagnostic:
    severity = msg.severity if msg.severity in ("error", "warning") else "information"
    end_line = assembled.submitted_line(msg.end_line) if msg.end_line is not None else None
    return Diagnostic(
        severity=severity,  # type: ignore[arg-type]
        line=assembled.submitted_line(msg.line),
        column=msg.column,
        end_line=end_line or None,
        end_column=msg.end_column,
        message=_clipped(msg.text),
    )


def _first_line(text: str, limit: int = 500) -> str:
    line = text.strip().partition("\n")[0]  # not `split`: a message can be megabytes
    return _clipped(line, limit)


# A verdict carries each Lean message, but not megabytes of one (a `pp.raw` term, say).
_MESSAGE_CHARS = 8000


def _clipped(text: str, limit: int = _MESSAGE_CHARS) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text) - limit} more characters)"


def _tail(text: str, limit: int = 300) -> str:
    text = text.strip()
    return text[-limit:] if text else "no output on stderr"
