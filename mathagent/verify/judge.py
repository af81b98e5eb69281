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
from mathagent.verify.assemble import Assembled, Target
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
    output = parse_output(run.stdout)
    diagnostics = [
        _diagnostic(m, assembled) for m in output.messages if assembled.origin(m.line) in ("header", "submission")
    ]
    stopped = _stopped(run, output.messages)
    if stopped is not None:
        # Lean did not finish its run: whatever the checks say is only an echo of that.
        kind, reason, note = stopped
        return _verdict(task_id, kind, [(reason, note)], diagnostics, [], run)

    findings: list[tuple[str, str]] = []  # (reason code, note for people)
    by_line: dict[int, list[LeanMessage]] = {}
    for msg in output.messages:
        origin = assembled.origin(msg.line)
        if _SORRY_WARNING.search(msg.text) and origin in ("submission", "check"):
            # a sorry in the task's own header is the task's business; the
            # axiom check still catches the proof using it
            findings.append((codes.SORRY, "the proof uses `sorry`"))
        if origin == "check":
            by_line.setdefault(msg.line, []).append(msg)
        elif msg.severity != "error":
            continue
        elif origin == "reference":
            findings.append((codes.BAD_STATEMENT, f"the formal statement does not elaborate: {_first_line(msg.text)}"))
        elif origin == "header":
            findings.append((codes.BAD_HEADER, f"the header does not compile: {_first_line(msg.text)}"))
        else:
            line = assembled.submitted_line(msg.line)
            findings.append((codes.LEAN_ERROR, f"Lean error at line {line}: {_first_line(msg.text)}"))

    axioms: list[str] = []
    for target in assembled.targets:
        target_findings, target_axioms = _read_checks(target, by_line)
        findings += target_findings
        axioms += target_axioms
    if not assembled.targets:
        findings.append((codes.THEOREM_MISSING, "no named theorem to check (an `example` cannot be audited)"))

    axioms = sorted(set(axioms))
    allowed = set(allowed_axioms)
    for name in axioms:
        if name == "sorryAx":
            findings.append((codes.SORRY, "the proof uses `sorry`"))
        elif name not in allowed:
            findings.append((f"{codes.AXIOM_PREFIX}{name}", f"depends on the axiom `{name}`, which is not allowed"))

    reasons = {r for r, _ in findings}
    if reasons & {codes.LEAN_ERROR, codes.BAD_HEADER, codes.BAD_STATEMENT}:
        # After an error the checks only echo it (a theorem that failed to
        # elaborate is "missing"); keep the findings that say more.
        findings = [(r, n) for r, n in findings if r not in _ECHOES]
    if reasons & {codes.BAD_HEADER, codes.BAD_STATEMENT}:
        kind = "error"  # the task is broken, not the proof
    elif findings:
        kind = "rejected"
    elif not all(by_line.get(t.axioms_line) for t in assembled.targets):
        # Defensive: never verify without the appended checks' answers.
        kind = "rejected"
        findings.append((codes.CHECKS_MISSING, "the verifier's own checks produced no result"))
    else:
        kind = "verified"
    return _verdict(task_id, kind, findings, diagnostics, axioms, run)


_ECHOES = {codes.THEOREM_MISSING, codes.STATEMENT_CHANGED, codes.CHECKS_MISSING}


def _stopped(run: RunOutcome, messages: list[LeanMessage]) -> tuple[str, str, str] | None:
    """(kind, reason, note) when Lean was killed or crashed, else None."""
    if run.timed_out:
        return "timeout", codes.TIMEOUT, f"Lean did not finish within the time limit ({run.time_s:.1f} s)"
    if run.memory_exceeded:
        return "error", codes.MEMORY, f"Lean went over the memory cap ({run.memory_mb} MB)"
    has_error = any(m.severity == "error" for m in messages)
    if run.returncode not in (0, 1) or (run.returncode == 1 and not has_error):
        return "error", codes.CRASH, f"Lean exited abnormally (status {run.returncode}): {_tail(run.stderr)}"
    return None


def _read_checks(target: Target, by_line: dict[int, list[LeanMessage]]) -> tuple[list[tuple[str, str]], list[str]]:
    """Findings and axioms from the verifier's own check lines for one target."""
    type_errors = [m for m in by_line.get(target.type_line or 0, []) if m.severity == "error"]
    if any(_UNKNOWN.search(m.text) for m in type_errors):
        return [(codes.THEOREM_MISSING, f"no theorem named `{target.name}` was declared")], []
    if type_errors:
        return [(codes.STATEMENT_CHANGED, f"`{target.name}` does not have the statement asked for")], []
    reports = by_line.get(target.axioms_line, [])
    found = [m for m in reports if m.severity == "information" and _AXIOMS.match(m.text.strip())]
    if len(reports) > 1 and found:
        return [(codes.FORGED_OUTPUT, "more than one message claims to be the verifier's axiom check")], []
    if any(m.severity == "error" for m in reports):
        return [(codes.THEOREM_MISSING, f"`{target.name}` is not in the environment at the end of the file")], []
    if not found:
        return [(codes.CHECKS_MISSING, "the verifier's own checks produced no result (was the file cut short?)")], []
    return [], [a for m in found for a in _axiom_names(m.text)]


def _verdict(
    task_id: str,
    kind: str,
    findings: list[tuple[str, str]],
    diagnostics: list[Diagnostic],
    axioms: list[str],
    run: RunOutcome,
) -> Verdict:
    reasons = list(dict.fromkeys(r for r, _ in findings))
    notes = list(dict.fromkeys(n for _, n in findings))
    return Verdict(
        id=task_id,
        verdict=kind,  # type: ignore[arg-type]
        reasons=reasons,
        message="; ".join(notes) if notes else "Lean accepted the proof; statement, sorry and axioms checked",
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
