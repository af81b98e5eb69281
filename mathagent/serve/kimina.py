"""kimina-lean-server's API on mathagent's verifier: requests in, verdicts out as its client reads them.

kimina answers a snippet with the Lean REPL's response: `messages` (Lean's
diagnostics), `sorries`, or an `error` string for server-level failures.
Its client (`kimina-client` on PyPI) calls a snippet valid when no message
is an error and `sorries` is empty; an `error` containing "timed out" is a
timeout. The mapping keeps those meanings and makes the client's judgement
the verifier's:

- verified: Lean's own messages (none of them an error);
- rejected only for Lean's errors: Lean's messages, as kimina would give them;
- rejected only for `sorry`: Lean's messages and an entry in `sorries` (the
  client's `sorry` status), plus a warning that names the reason;
- any other rejection (axiom, banned command, changed statement, a
  declaration the audit refused, ...): Lean's messages plus an *error*
  message `mathagent rejected this proof (REASONS): WHY`, so the client's
  `is_valid` is false even though Lean itself raised no error;
- timeout: `error` "... timed out ..." (the client's timeout status);
- an error verdict (memory cap, crash, a task that does not elaborate):
  `error` naming the reason (the client's server-error status).

Every result also carries `mathagent`: the verdict, its reasons and message.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mathagent.verify import verdict as codes
from mathagent.verify.verdict import Diagnostic, Verdict, VerdictKind

_SEVERITY = {"information": "info"}  # Lean's --json word -> the REPL's
PREFIX = "mathagent rejected this proof"


class Snippet(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str | int = Field(description="Identifier to trace the snippet (with --tasks: the task it proves, or ID#k)")
    code: str = Field(description="A whole Lean file: header (imports, options) and the proof")


class CheckRequest(BaseModel):
    """`POST /api/check`, as kimina-client sends it."""

    model_config = ConfigDict(extra="ignore")

    snippets: list[Snippet] = Field(description="Snippets to check; ids must be unique")
    timeout: float | None = Field(None, description="Seconds per snippet (default: the server's; at most its cap)")
    debug: bool = Field(False, description="Accepted; the verdict is always in `mathagent`")
    reuse: bool = Field(True, description="Accepted; every check is isolated (warm servers keep only the header)")
    infotree: str | None = Field(None, description="Accepted; no info tree is returned")


class Code(BaseModel):
    model_config = ConfigDict(extra="ignore")

    custom_id: str | int
    proof: str | None = None
    code: str | None = None

    def content(self) -> str | None:
        return self.proof if self.proof is not None else self.code


class VerifyRequest(BaseModel):
    """`POST /verify`, kimina's legacy batch endpoint."""

    model_config = ConfigDict(extra="ignore")

    codes: list[Code] = Field(description="Proofs to check: `custom_id` and a whole file in `proof` or `code`")
    timeout: float | None = Field(None, description="Seconds per proof (default: the server's; at most its cap)")
    infotree_type: str | None = Field(None, description="Accepted; no info tree is returned")
    disable_cache: bool = Field(False, description="Accepted; verdicts of identical checks are reused regardless")


def repl_response(ident: str, verdict: Verdict, timeout_s: float) -> dict[str, Any]:
    """One `/api/check` result (kimina's ReplResponse), without null fields."""
    result: dict[str, Any] = {"id": ident, "time": verdict.time_s}
    error = _server_error(verdict, timeout_s)
    if error is not None:
        result["error"] = error
    else:
        result["response"] = command_response(verdict)
    result["mathagent"] = summary(verdict)
    return result


def backward_response(ident: str, verdict: Verdict, timeout_s: float) -> dict[str, Any]:
    """One `/verify` result (kimina's BackwardResponse): the response carries its time."""
    result: dict[str, Any] = {"custom_id": ident}
    error = _server_error(verdict, timeout_s)
    if error is not None:
        result["error"] = error
    else:
        result["response"] = {**command_response(verdict), "time": verdict.time_s}
    result["mathagent"] = summary(verdict)
    return result


def summary(verdict: Verdict) -> dict[str, Any]:
    return {
        "verdict": str(verdict.verdict),
        "reasons": list(verdict.reasons),
        "message": verdict.message,
        "axioms": list(verdict.axioms),
        "cached": verdict.cached,
    }


def command_response(verdict: Verdict) -> dict[str, Any]:
    """The REPL's CommandResponse for a verdict Lean got to the end of: messages (and sorries)."""
    messages = [_message(d) for d in verdict.diagnostics]
    response: dict[str, Any] = {"messages": messages}
    if verdict.verified:
        return response
    reasons = ", ".join(verdict.reasons)
    note = f"{PREFIX} ({reasons}): {verdict.message}"
    anchor = _anchor(verdict)
    if verdict.reasons == [codes.SORRY]:
        warnings = [d for d in verdict.diagnostics if d.severity == "warning" and "sorry" in d.message]
        places = [(d.line, d.column, d.end_line or d.line, d.end_column or d.column) for d in warnings] or [anchor]
        response["sorries"] = [
            {"pos": {"line": line, "column": col}, "endPos": {"line": end, "column": end_col}, "goal": ""}
            for line, col, end, end_col in places
        ]
        messages.append(_note("warning", note, anchor))
    elif not (verdict.reasons == [codes.LEAN_ERROR] and any(m["severity"] == "error" for m in messages)):
        messages.append(_note("error", note, anchor))
    return response


def _server_error(verdict: Verdict, timeout_s: float) -> str | None:
    """The `error` string for verdicts Lean did not get to the end of."""
    if verdict.verdict is VerdictKind.TIMEOUT:
        return f"Lean check timed out in {timeout_s:g} seconds ({PREFIX}: {verdict.message})"
    if verdict.verdict is VerdictKind.ERROR:
        return f"mathagent could not check this proof ({', '.join(verdict.reasons)}): {verdict.message}"
    return None


def _message(d: Diagnostic) -> dict[str, Any]:
    message: dict[str, Any] = {
        "severity": _SEVERITY.get(d.severity, d.severity),
        "pos": {"line": d.line, "column": d.column},
        "data": d.message,
    }
    if d.end_line is not None and d.end_column is not None:
        message["endPos"] = {"line": d.end_line, "column": d.end_column}
    return message


def _anchor(verdict: Verdict) -> tuple[int, int, int, int]:
    """Where to attach the verifier's own message: Lean's first error, else the file's first line."""
    first = verdict.first_error()
    if first is not None and first.line > 0:
        return first.line, first.column, first.end_line or first.line, first.end_column or first.column
    return 1, 0, 1, 0


def _note(severity: str, text: str, anchor: tuple[int, int, int, int]) -> dict[str, Any]:
    line, column, end_line, end_column = anchor
    return {
        "severity": severity,
        "pos": {"line": line, "column": column},
        "endPos": {"line": end_line, "column": end_column},
        "data": text,
    }
