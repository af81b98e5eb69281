"""`--help` placeholders that read well on every typer mathagent supports.

Recent typer releases (the ones that carry their own copy of click) print a
type placeholder after every parameter in the rich help: `<bool>` after a
flag that takes no value (`--json <bool>`, even `--help <bool>`),
`<list[Path]>` after FILES, `<list[str]>` after a repeatable option, and
argument names in lower case (`{problems}`) where the help text says
PROBLEMS. `tidy()` makes that help read as click's own does: no placeholder
after a flag, the element type after a list (`FILES... <path>`,
`--allow-axiom <str>`), arguments in capitals. Older typer releases already
print it that way and lack these methods; `tidy()` leaves them alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from typer import core

_LIST = re.compile(r"^<list\[(?P<element>.+)\]>$")


def tidy() -> None:
    """Adjust typer's help placeholders once (idempotent)."""
    option, argument = core.TyperOption, core.TyperArgument
    if not hasattr(argument, "_rich_display_name") or getattr(option, "_mathagent_tidy", False):
        return
    replacements: list[tuple[type, str, object]] = [
        (option, "display_type_rich", _option_type(option.display_type_rich)),
        (argument, "display_type_rich", _element_type(argument.display_type_rich)),
        (argument, "display_name_raw", property(_argument_name)),
        (option, "_mathagent_tidy", True),
    ]
    for cls, name, value in replacements:
        setattr(cls, name, value)


def _option_type(original: Callable[[Any, Any], str | None]) -> Callable[[Any, Any], str | None]:
    def display_type_rich(self: Any, ctx: Any) -> str | None:
        if self.metavar is None and (self.is_flag or self.count):
            return None  # a flag takes no value
        return _element_type(original)(self, ctx)

    return display_type_rich


def _element_type(original: Callable[[Any, Any], str | None]) -> Callable[[Any, Any], str | None]:
    def display_type_rich(self: Any, ctx: Any) -> str | None:
        shown = original(self, ctx)
        match = _LIST.match(shown or "")
        # a list is given one value at a time (FILES... or a repeated option): show one value's type
        return f"<{match['element'].lower()}>" if match else shown

    return display_type_rich


def _argument_name(self: Any) -> str:
    return str(self.metavar) if self.metavar is not None else str(self.name).upper()
