"""The statements a kimina-style client proves, named by snippet id (`serve --tasks FILE`).

A kimina snippet is a whole Lean file and nothing else: the service cannot
know which theorem the client wanted proved. Checked alone, a file is sound
only about itself (every declaration in it is proved, with no sorry and no
extra axiom), so a model that renames or weakens its theorem still passes.
With a file of tasks (the `verify --input` rows: `id`, `formal_statement`,
optional `header`), a snippet whose id is `ID` or `ID#anything` is checked as
a submission for task `ID`: the file must be that task's header and statement
with a proof, and the kernel checks that the statement is the one asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mathagent.errors import InputError
from mathagent.jsonl import first_field, read_rows, unencodable
from mathagent.verify.tasks import VerifyTask

SEPARATOR = "#"  # `ID#3`: sample 3 of task ID (ids must be unique within a request)
_HINT = "--tasks takes a JSONL file of tasks with `id` and `formal_statement` (and `header`), like verify --input"


@dataclass(frozen=True)
class KnownStatement:
    formal_statement: str
    header: str | None  # None: the server's default header


class Statements:
    """Task id -> the statement (and header) a snippet with that id must prove."""

    def __init__(self, by_id: dict[str, KnownStatement], source: str = "") -> None:
        self.by_id = by_id
        self.source = source
        self.longest = max((len(ident) for ident in by_id), default=0)

    def __len__(self) -> int:
        return len(self.by_id)

    def find(self, snippet_id: str) -> tuple[str, KnownStatement] | None:
        """(task id, statement) for a snippet id `ID` or `ID#suffix` (the longest task id that fits)."""
        candidate = snippet_id
        if len(candidate) > self.longest:
            # only the first `longest` characters can hold a task id: never try every `#` of a 1 MB id
            cut = candidate.rfind(SEPARATOR, 0, self.longest + 1)
            if cut <= 0:
                return None
            candidate = candidate[:cut]
        while True:
            found = self.by_id.get(candidate)
            if found is not None:
                return candidate, found
            cut = candidate.rfind(SEPARATOR)
            if cut <= 0:
                return None
            candidate = candidate[:cut]

    def task(self, snippet_id: str, code: str) -> VerifyTask | None:
        """The verifier task for a snippet, or None when its id names no task."""
        found = self.find(snippet_id)
        if found is None:
            return None
        _, statement = found
        return VerifyTask(
            id=snippet_id,
            formal_statement=statement.formal_statement,
            header=statement.header,
            full_code=code,
            source=f"snippet {snippet_id}",
        )

    @classmethod
    def load(cls, path: Path) -> Statements:
        """Read a task file; a bad row stops the server from starting (InputError naming the line)."""
        if not path.is_file():
            raise InputError(f"no such file: {path}" if not path.exists() else f"{path} is not a file", hint=_HINT)
        by_id: dict[str, KnownStatement] = {}
        for row in read_rows(path):
            if row.error is not None:
                raise InputError(f"{row.source}: {row.error}", hint=_HINT)
            if not isinstance(row.value, dict):
                raise InputError(f"{row.source}: expected a JSON object", hint=_HINT)
            _, ident = first_field(row.value, ("id", "name", "problem_id", "task_id"))
            statement, header = row.value.get("formal_statement"), row.value.get("header")
            if ident is None or not isinstance(statement, str) or not statement.strip():
                raise InputError(f"{row.source}: a task needs `id` and a non-empty `formal_statement`", hint=_HINT)
            if header is not None and not isinstance(header, str):
                raise InputError(f"{row.source}: `header` must be a string", hint=_HINT)
            problem = next(filter(None, (unencodable(t) for t in (str(ident), statement, header or ""))), None)
            if problem is not None:
                raise InputError(f"{row.source}: the task has {problem}", hint=_HINT)
            if str(ident) in by_id:
                raise InputError(f"{row.source}: task id {str(ident)!r} appears twice", hint=_HINT)
            by_id[str(ident)] = KnownStatement(statement, header)
        if not by_id:
            raise InputError(f"{path} has no tasks", hint=_HINT)
        return cls(by_id, str(path))
