"""mathagent's own API: `verify --input` rows in, `verify --json` verdicts out.

A request body is either JSON (`{"tasks": [ROW, ...], "timeout": S}`, or a
bare list of rows) or JSON Lines (`Content-Type: application/x-ndjson`, one
row per line, exactly a `verify --input` file; `?timeout=S`). Rows are read
by the same code as the CLI's, so a row the CLI cannot read is an `error`
verdict with reason `bad_input` here too, and the rest still run. The
answer is in the request's form: `{"results": [VERDICT, ...]}` or one
verdict per line, in input order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from mathagent.jsonl import BadJSON, dumps, parse_json, rows_from_bytes
from mathagent.serve.limits import Refused, invalid
from mathagent.verify.tasks import TASK_TEXT_FIELDS, BadRow, VerifyTask, task_from_row, tasks_from_rows
from mathagent.verify.verdict import Verdict

JSON_LINES = ("application/x-ndjson", "application/jsonl", "application/jsonlines", "application/x-jsonlines")


class NativeRequest(BaseModel):
    """The JSON form of a `POST /v1/verify` body (for the API docs)."""

    tasks: list[dict[str, Any]] = Field(
        description="Rows as `mathagent verify --input` reads them: `id`, `header`, `formal_statement`, "
        "`proof` | `full_code`"
    )
    timeout: float | None = Field(None, description="Seconds per check (default: the server's; at most its cap)")


@dataclass(frozen=True)
class Parsed:
    items: list[VerifyTask | BadRow]
    timeout: float | None
    lines: bool  # answer in JSON Lines


def is_json_lines(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() in JSON_LINES


def parse(body: bytes, content_type: str, timeout_param: float | None) -> Parsed:
    """The rows of a request body; Refused when the body as a whole is unusable."""
    if is_json_lines(content_type):
        return Parsed(_rows_from_lines(body), timeout_param, lines=True)
    try:
        value = parse_json(body)
    except BadJSON as exc:
        raise Refused(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
    timeout = timeout_param
    if isinstance(value, dict):
        unknown = set(value) - {"tasks", "timeout"}
        if unknown:
            fields = ", ".join(sorted(unknown))
            shapes = "the body is {'tasks': [...], 'timeout': S}, a JSON list of tasks, or JSONL (one task a line)"
            if unknown & TASK_TEXT_FIELDS:  # one task sent bare, not in the wrapper
                raise invalid(
                    f"unknown field(s) {fields}: this looks like one task; {shapes}, e.g. {{'tasks': [TASK]}}"
                )
            raise invalid(f"unknown field(s) {fields}: {shapes}")
        rows, timeout = value.get("tasks"), value.get("timeout", timeout_param)
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))):
            # the type, not the value: a client's value may be megabytes long or nested a thousand deep
            raise invalid(f"`timeout` must be a number of seconds (got {type(timeout).__name__})")
    else:
        rows = value
    if not isinstance(rows, list):
        raise invalid("`tasks` must be a list of rows (objects as `mathagent verify --input` reads them)")
    items = [task_from_row(row, id_default=f"row:{n}", source=f"request row {n}") for n, row in enumerate(rows, 1)]
    return Parsed(items, timeout, lines=False)


def _rows_from_lines(body: bytes) -> list[VerifyTask | BadRow]:
    return list(tasks_from_rows(rows_from_bytes(body, source="request line ", default_id="line:")))


def render(verdicts: list[Verdict], lines: bool) -> str:
    """The response body: `verify --json` objects, as a JSON document or one per line."""
    if lines:
        return "".join(v.to_json() + "\n" for v in verdicts)
    return dumps({"results": [v.to_dict() for v in verdicts]})
