"""What a file declared, as Lean itself reports it.

Lean writes the declarations of the file it elaborated into its `.ilean`
data: `lean -i FILE.ilean` for a one-shot run, the `$/lean/ileanInfoFinal`
notification for a language server worker. Each entry is the constant's full
name, exactly as Lean named it (namespaces, `private` mangling, «quoting»
included), and its range in the file. The verifier reads them to know every
declaration a submission added, and which file region declared a name, without
re-implementing Lean's parser.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Declaration:
    name: str  # the constant's full name as Lean prints it
    line: int  # 1-based line of the declaration's start

    @property
    def parts(self) -> tuple[str, ...]:
        return split_name(self.name)

    @property
    def source_name(self) -> tuple[str, ...]:
        """The components to write in source to refer to it from the same file
        (`private` names are mangled: the file itself reaches them by their
        unmangled name)."""
        parts = self.parts
        if parts[:1] == ("_private",) and "0" in parts:
            return parts[parts.index("0") + 1 :]
        return parts

    @property
    def private(self) -> bool:
        return self.parts[:1] == ("_private",)

    @property
    def short(self) -> str:
        parts = self.parts
        return parts[-1] if parts else self.name


def from_ilean(data: dict[str, Any]) -> list[Declaration] | None:
    """Declarations from ilean data (a decoded `.ilean` file or the params of
    `$/lean/ileanInfoFinal`); None when it does not have the expected shape.

    Recent Lean lists them under `decls`; older Lean (the 4.9 that Mathlib
    pins, say) only has `references`, where every constant the file defines
    has a `definition` range.
    """
    decls = data.get("decls")
    if isinstance(decls, dict):
        entries = list(decls.items())
    elif isinstance(data.get("references"), dict):
        entries = [
            (name, ref.get("definition"))
            for key, ref in data["references"].items()
            if isinstance(ref, dict) and ref.get("definition") and (name := _constant_key(key)) is not None
        ]
    else:
        return None
    found = []
    for name, where in entries:
        if not isinstance(name, str) or not isinstance(where, list) or not where or not isinstance(where[0], int):
            return None
        found.append(Declaration(name=name, line=where[0] + 1))
    return sorted(found, key=lambda d: (d.line, d.name))


def _constant_key(key: str) -> str | None:
    """The constant a `references` key names: `c:Name` (older Lean) or
    `{"c":{"m":module,"n":name}}` (newer); None for other kinds of reference."""
    if key.startswith("c:"):
        return key[2:]
    return _module_key(key)[1] if key.startswith("{") else None


def constants_from_ilean(data: dict[str, Any]) -> tuple[list[Declaration] | None, list[Declaration] | None]:
    """(declarations, definitions) of ilean data; each None when the data does not
    have the expected shape. Declarations are `decls`: what a command declared by
    name, but only the first type of a `mutual` block, and no constructor or
    structure field. Definitions add every `references` entry with a definition
    range in this file, which covers those."""
    declared = from_ilean(data)
    if declared is None:
        return None, None
    found = {d.name: d for d in declared}
    references = data.get("references")
    for key, ref in references.items() if isinstance(references, dict) else ():
        where = ref.get("definition") if isinstance(ref, dict) else None
        if not (isinstance(where, list) and where and isinstance(where[0], int)):
            continue  # most references are uses of imported constants: their keys are not decoded
        name = _constant_key(key)
        if name is not None:
            found.setdefault(name, Declaration(name=name, line=where[0] + 1))
    return declared, sorted(found.values(), key=lambda d: (d.line, d.name))


def imported_from(data: dict[str, Any], names: Iterable[str]) -> dict[str, frozenset[str]] | None:
    """The modules Lean says declare each of `names` that the file refers to without
    defining it (a `references` key `{"c":{"m":module,"n":name}}`); None when its
    data names no modules (older Lean keys references `c:Name`).

    Only keys that contain one of the names are decoded: a file that imports a
    large library refers to thousands of constants."""
    references = data.get("references")
    if not isinstance(references, dict):
        return {}  # nothing traced: every name counts as not found
    if any(key.startswith("c:") for key in references):
        return None
    wanted = set(names)
    found: dict[str, set[str]] = {}
    for key, ref in references.items():
        if not any(name in key for name in wanted):
            continue
        if isinstance(ref, dict) and ref.get("definition"):
            continue  # the file's own: the judge refuses that by itself
        module, name = _module_key(key)
        if name in wanted and module is not None:
            found.setdefault(name, set()).add(module)
    return {name: frozenset(modules) for name, modules in found.items()}


def _module_key(key: str) -> tuple[str | None, str | None]:
    """(module, constant) of a newer `references` key; (None, None) for others."""
    try:
        ident = json.loads(key)
    except ValueError:
        return None, None
    const = ident.get("c") if isinstance(ident, dict) else None
    if not isinstance(const, dict):
        return None, None
    module, name = const.get("m"), const.get("n")
    return (module if isinstance(module, str) else None), (name if isinstance(name, str) else None)


@dataclass(frozen=True)
class FileReport:
    """What Lean's declaration report (`.ilean` data) says of a checked file; all
    None when Lean wrote none (a one-shot Lean writes none after an error)."""

    declarations: tuple[Declaration, ...] | None = None  # see `constants_from_ilean`
    definitions: tuple[Declaration, ...] | None = None
    axiom_modules: Mapping[str, frozenset[str]] | None = None  # see `imported_from`


def read_report(data: dict[str, Any] | None, axioms: Iterable[str]) -> FileReport:
    """The report of ilean `data`, with the modules of the constants named `axioms`."""
    if data is None:
        return FileReport()
    declared, defined = constants_from_ilean(data)
    return FileReport(
        declarations=tuple(declared) if declared is not None else None,
        definitions=tuple(defined) if defined is not None else None,
        axiom_modules=imported_from(data, axioms),
    )


def load_ilean(text: str) -> dict[str, Any] | None:
    """A `.ilean` file's data; None when it is not a JSON object."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def split_name(name: str) -> tuple[str, ...]:
    """Components of a name as `Name.toString` writes it: dots separate,
    «quoted» components may contain dots."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in name:
        if quoted:
            if ch == "»":
                quoted = False
            else:
                current.append(ch)
        elif ch == "«":
            quoted = True
        elif ch == ".":
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return tuple(parts)
