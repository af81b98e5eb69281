"""What to verify: tasks, and reading them from Lean files and JSONL rows.

JSONL rows are read the way the field writes them (miniF2F / DeepSeek-Prover /
Lean-Workbook): `name` or `id`, `header`, `formal_statement`, and a proof as
`proof` (text after the statement) or `full_code` (a whole file). A row that
cannot be read becomes a `BadRow` carrying the reason; it never stops the rest.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from mathagent.errors import InputError
from mathagent.jsonl import Row, first_field, read_rows, unencodable
from mathagent.verify import verdict as codes
from mathagent.verify.verdict import Verdict, VerdictKind
from mathagent.vocabulary import SandboxKind

_ID_KEYS = ("id", "name", "problem_id", "task_id")
_PROOF_KEYS = ("proof", "formal_proof")
_FULL_CODE_KEYS = ("full_code", "code", "full_proof")
# the fields that carry a task's Lean text, under every name a row may give them
TASK_TEXT_FIELDS = frozenset({"header", "formal_statement", *_PROOF_KEYS, *_FULL_CODE_KEYS})


@dataclass(frozen=True)
class VerifyTask:
    """One thing to check.

    - `formal_statement` + `proof`: the proof text follows the statement
      (a trailing `sorry` in the statement is replaced by it).
    - `formal_statement` + `full_code`: a whole file that must be the header
      followed by the statement, unchanged, and its proof.
    - `full_code` alone: a whole file; every theorem in it is checked.

    `header=None` means the Lake project's default header.
    """

    id: str
    formal_statement: str | None = None
    proof: str | None = None
    full_code: str | None = None
    header: str | None = None
    source: str = ""

    @property
    def mode(self) -> str:
        if self.formal_statement is None:
            return "file"
        return "full_code" if self.full_code is not None else "proof"


_TEXT_FIELDS = ("header", "formal_statement", "proof", "full_code")


def unsendable(task: VerifyTask) -> str | None:
    """Why Lean could not be given this task's text (it reads UTF-8, and a lone
    surrogate has no UTF-8 form), or None when it can."""
    for name in _TEXT_FIELDS:
        text = getattr(task, name)
        problem = unencodable(text) if text is not None else None
        if problem is not None:
            return f"field `{name}` has {problem}: Lean reads UTF-8 text"
    return None


@dataclass(frozen=True)
class BadRow:
    """An input that could not be turned into a task, and why."""

    id: str
    source: str
    message: str


def bad_row_verdict(row: BadRow) -> Verdict:
    """The verdict a row that cannot be read gets (`verify --input`, the service): an error, not run."""
    return Verdict(
        id=row.id,
        verdict=VerdictKind.ERROR,
        reasons=[codes.BAD_INPUT],
        message=f"{row.source}: {row.message}",
        sandbox=SandboxKind.NOT_RUN,
    )


def task_from_row(row: object, *, id_default: str, source: str) -> VerifyTask | BadRow:
    """Build a task from one decoded JSON value, or say what is wrong with it."""
    if not isinstance(row, dict):
        return BadRow(id_default, source, f"expected a JSON object, got {type(row).__name__}")
    id_key, given_id = first_field(row, _ID_KEYS)
    if isinstance(given_id, (dict, list)):  # str() of a deeply nested one would exhaust the stack
        kind = type(given_id).__name__
        return BadRow(id_default, source, f"field `{id_key}` must be a string or a number, got {kind}")
    task_id = str(given_id or id_default)
    id_problem = unencodable(task_id)
    if id_problem is not None:  # the id names the verdict in every output (a table too): it must be text
        return BadRow(id_default, source, f"field `{id_key}` has {id_problem}")
    fields: dict[str, str | None] = {}
    wanted = {
        "formal_statement": ("formal_statement",),
        "header": ("header",),
        "proof": _PROOF_KEYS,
        "full_code": _FULL_CODE_KEYS,
    }
    for field, keys in wanted.items():
        key, value = first_field(row, keys)
        if key is not None and not isinstance(value, str):
            return BadRow(task_id, source, f"field `{key}` must be a string, got {type(value).__name__}")
        fields[field] = value
    if fields["proof"] is not None and fields["full_code"] is not None:
        return BadRow(task_id, source, "give either `proof` or `full_code`, not both")
    if fields["formal_statement"] is None and fields["full_code"] is None:
        return BadRow(
            task_id,
            source,
            "missing field: a row needs `formal_statement` with `proof` or `full_code`, or a whole file in `full_code`",
        )
    if fields["formal_statement"] is not None and fields["proof"] is None and fields["full_code"] is None:
        return BadRow(task_id, source, "missing field: no `proof` or `full_code` to check against `formal_statement`")
    if fields["formal_statement"] is not None and not fields["formal_statement"].strip():
        return BadRow(task_id, source, "field `formal_statement` is empty")
    task = VerifyTask(id=task_id, source=source, **fields)
    problem = unsendable(task)
    return task if problem is None else BadRow(task_id, source, problem)


def read_jsonl(path: Path) -> Iterator[VerifyTask | BadRow]:
    """Tasks from a JSONL file, one per line; unreadable lines become BadRows.

    Raises InputError only when the file itself cannot be opened.
    """
    return tasks_from_rows(read_rows(path))


def tasks_from_rows(rows: Iterable[Row]) -> Iterator[VerifyTask | BadRow]:
    """A task for each JSONL row, or a BadRow saying why the line has none."""
    for row in rows:
        if row.error is not None:
            yield BadRow(row.default_id, row.source, row.error)
        else:
            yield task_from_row(row.value, id_default=row.default_id, source=row.source)


def read_lean_file(path: Path) -> VerifyTask | BadRow:
    """A whole `.lean` file as a task; its id is the path as given.

    Raises InputError when the file does not exist or cannot be opened.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return BadRow(str(path), str(path), f"not UTF-8: byte {data[exc.start]:#04x} at offset {exc.start}")
    if not text.strip():
        return BadRow(str(path), str(path), "file is empty")
    return VerifyTask(id=str(path), full_code=text, source=str(path))
