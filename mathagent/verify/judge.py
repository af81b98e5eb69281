"""From Lean's run to a verdict. The one place that decides "verified".

A proof is verified only when every condition holds: Lean reported no error,
no `sorry`, the verifier's own appended checks reported (on their own lines,
exactly once each), the statement check passed, and every axiom the target
depends on is allowed. Anything the submission printed is only ever evidence
against it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from mathagent.verify import verdict as codes
from mathagent.verify.assemble import Assembled
from mathagent.verify.messages import LeanMessage, parse_output
from mathagent.verify.verdict import Diagnostic, Verdict

DEFAULT_AXIOMS = ("propext", "Quot.sound", "Classical.choice")

_SORRY_WARNING = re.compile(r"declaration uses .sorry.")
_AXIOMS = re.compile(r"^'(?P<name>[^']+)' (?:depends on axioms: \[(?P<list>.*)\]|does not depend on any axioms)\s*$", re.S)
_UNKNOWN = re.compile(r"unknown (?:identifier|constant)", re.I)


@dataclass(frozen=True)
class RunOutcome:
    """What happened when Lean ran: its output and how it ended."""

    stdout: str
    stderr: str
    returncode: int | None
    time_s: float
    sandbox: str
    timed_out: bool = False
    memory_exceeded: bool = False
    memory_mb: int | None = None


def judge(task_id: str, assembled: Assembled, run: RunOutcome, allowed_axioms: Iterable[str]) -> Verdict:
    """The verdict for one Lean run of `assembled`."""
    allowed = set(allowed_axioms)
    output = parse_output(run.stdout)
    diagnostics: list[Diagnostic] = []
    reasons: list[str] = []
    notes: list[str] = []
    by_line: dict[int, list[LeanMessage]] = {}
    header_failed = False

    def add(reason: str, note: str | None = None) -> None:
        if reason not in reasons:
            reasons.append(reason)
        if note and note not in notes:
            notes.append(note)

    for msg in output.messages:
        origin = assembled.origin(msg.line)
        if _SORRY_WARNING.search(msg.text):
            add(codes.SORRY, "the proof uses `sorry`")
        if origin == "check":
            by_line.setdefault(msg.line, []).append(msg)
            continue
        if origin == "reference":
            if msg.severity == "error":
                add(codes.BAD_STATEMENT, f"the formal statement does not elaborate: {_first_line(msg.text)}")
            continue
        diagnostics.append(_diagnostic(msg, assembled))
        if msg.severity == "error" and origin == "header":
            header_failed = True
            add(codes.LEAN_ERROR, f"the header does not compile: {_first_line(msg.text)}")
        elif msg.severity == "error":
            add(codes.LEAN_ERROR, f"Lean error at line {assembled.submitted_line(msg.line)}: {_first_line(msg.text)}")

    axioms: list[str] = []
    for target in assembled.targets:
        type_errors = [m for m in by_line.get(target.type_line or 0, []) if m.severity == "error"]
        for msg in type_errors:
            if _UNKNOWN.search(msg.text):
                add(codes.THEOREM_MISSING, f"no theorem named `{target.name}` was declared")
            else:
                add(codes.STATEMENT_CHANGED, f"`{target.name}` does not have the statement asked for")
        if type_errors:
            continue  # its axiom report is about a failed check, not the proof
        reports = by_line.get(target.axioms_line, [])
        found = [m for m in reports if m.severity == "information" and _AXIOMS.match(m.text.strip())]
        errors = [m for m in reports if m.severity == "error"]
        if len(reports) > 1 and len(found) >= 1:
            add(codes.FORGED_OUTPUT, "more than one message claims to be the verifier's axiom check")
        elif errors and target.type_line is None:
            add(codes.THEOREM_MISSING, f"`{target.name}` is not in the environment at the end of the file")
        elif not found and not (set(reasons) & {codes.THEOREM_MISSING, codes.STATEMENT_CHANGED}):
            add(codes.CHECKS_MISSING, "the verifier's own checks produced no result (was the file cut short?)")
        for m in found:
            axioms.extend(_axiom_names(m.text))
    if not assembled.targets:
        add(codes.THEOREM_MISSING, "no named theorem to check (an `example` cannot be audited)")

    axioms = sorted(set(axioms))
    for name in axioms:
        if name == "sorryAx":
            add(codes.SORRY, "the proof uses `sorry`")
        elif name not in allowed:
            add(f"{codes.AXIOM_PREFIX}{name}", f"depends on the axiom `{name}`, which is not allowed")

    has_error = any(m.severity == "error" for m in output.messages)
    if codes.LEAN_ERROR in reasons:
        # After an error the checks only echo it (a theorem that failed to
        # elaborate is "missing"); keep the reasons that say something new.
        consequences = {codes.THEOREM_MISSING, codes.STATEMENT_CHANGED, codes.CHECKS_MISSING}
        reasons[:] = [r for r in reasons if r not in consequences]
        notes[:] = [n for n in notes if not n.startswith(("no theorem named", "the verifier's own", "`"))]
    kind = "verified"
    if run.timed_out:
        kind = "timeout"
        add(codes.TIMEOUT, f"Lean did not finish within the time limit ({run.time_s:.1f} s)")
    elif run.memory_exceeded:
        kind = "error"
        add(codes.MEMORY, f"Lean went over the memory cap ({run.memory_mb} MB)")
    elif run.returncode not in (0, 1) or (run.returncode == 1 and not has_error):
        kind = "error"
        add(codes.CRASH, f"Lean exited abnormally (status {run.returncode}): {_tail(run.stderr)}")
    elif header_failed or codes.BAD_STATEMENT in reasons:
        kind = "error"
    elif reasons:
        kind = "rejected"
    if kind == "verified" and not all(by_line.get(t.axioms_line) for t in assembled.targets):
        # Defensive: never verify without the appended checks' answers.
        kind = "rejected"
        add(codes.CHECKS_MISSING, "the verifier's own checks produced no result")

    message = "; ".join(notes) if notes else "Lean accepted the proof; statement, sorry and axioms checked"
    return Verdict(
        id=task_id,
        verdict=kind,  # type: ignore[arg-type]
        reasons=reasons,
        message=message,
        diagnostics=diagnostics,
        axioms=axioms,
        time_s=round(run.time_s, 3),
        sandbox=run.sandbox,
    )


def _diagnostic(msg: LeanMessage, assembled: Assembled) -> Diagnostic:
    severity = msg.severity if msg.severity in ("error", "warning") else "information"
    return Diagnostic(
        severity=severity,  # type: ignore[arg-type]
        line=assembled.submitted_line(msg.line),
        column=msg.column,
        end_line=assembled.submitted_line(msg.end_line) if msg.end_line is not None else None,
        end_column=msg.end_column,
        message=msg.text,
    )


def _axiom_names(text: str) -> list[str]:
    m = _AXIOMS.match(text.strip())
    if m is None or m.group("list") is None:
        return []
    return [a for a in re.split(r"[,\s]+", m.group("list")) if a]


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0] if lines else ""


def _tail(text: str, limit: int = 300) -> str:
    text = text.strip()
    return text[-limit:] if text else "no output on stderr"
