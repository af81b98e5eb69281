"""Constants the Lean kernel computes with by name, and who may declare them.

The kernel does not unfold these by their definitions: it evaluates
`Nat.add 2 2` on big integers, turns a numeral into `Nat.succ` applications
and a string literal into `String.ofList`/`Char.ofNat` terms, whatever the
environment says `Nat.add` or `String` is. A file that starts with `prelude`
(no Init) can declare its own `Nat.add` that returns zero; the kernel then
finds `Nat.add 2 2` equal both to 4 and to 0, and `False` follows with no
axiom at all. So the checked file (submission and task header alike) may not
declare any of them: only an imported module can, and on a toolchain with
Init they come from Init itself (a file that imports Init cannot redeclare
them, and one that imports only `Init.Prelude` cannot add the missing ones,
`Nat.gcd` say).

Names are compared as Lean's full names (the `.ilean` data): `private def
Nat.add` is a different constant the kernel does not know, while `namespace
Nat` + `def add` or `def _root_.Nat.add` is the very one.

`tests/test_kernel_builtins.py` asks this Lean which of the `Nat` operations
its kernel evaluates on literals, so a Lean that adds one is noticed.
"""

from __future__ import annotations

from collections.abc import Iterable

from mathagent.verify.assemble import Assembled
from mathagent.verify.declarations import Declaration

# Binary `Nat` operations the kernel evaluates on literals (GMP), `Nat.log2`
# as well on newer kernels. `Bool` and `List` need no entry: the kernel's
# results name `Bool.true`/`List.cons`, but only through `Nat.beq`/`String`,
# whose types mention them, so those exist before and come from the same place.
NAT_OPERATIONS = (
    "add",
    "sub",
    "mul",
    "div",
    "mod",
    "gcd",
    "beq",
    "ble",
    "land",
    "lor",
    "xor",
    "shiftLeft",
    "shiftRight",
    "pow",
    "log2",
)

KERNEL_BUILTINS = frozenset(
    {
        "Nat",
        "Nat.zero",
        "Nat.succ",
        *(f"Nat.{op}" for op in NAT_OPERATIONS),
        "String",
        "String.mk",
        "String.ofList",
        "Char",
        "Char.ofNat",
        "Lean",  # an inductive `Lean` would make `Lean.reduceBool` a constructor
        "Lean.reduceBool",
        "Lean.reduceNat",
    }
)


def declared_builtins(assembled: Assembled, declarations: Iterable[Declaration]) -> dict[str, list[str]]:
    """The kernel builtins the checked file declares itself, by the part of the
    file that declares them (`assemble.HEADER`, `assemble.SUBMISSION`, ...)."""
    found: dict[str, list[str]] = {}
    for declaration in declarations:
        if declaration.name in KERNEL_BUILTINS:
            found.setdefault(assembled.origin(declaration.line), []).append(declaration.name)
    return found
