"""What reaches a person's terminal: never a control character from the text shown.

Lean repeats a proof's identifiers in its messages, and `«…»` lets an
identifier hold any character, ESC included: a model's proof could move the
cursor, clear the screen and draw a "✓ verified" over its own rejection (or
a task id, a file name, a model's solution could). Rich removes only a few
controls (BEL, backspace, CR, ...). So every console of the command line
shows control characters in text as visible symbols (ESC as `␛`), while rich's
own styles and cursor work (its control segments) pass as they are; and text
from outside goes into tables and lines as `Text`, never as markup.
"""

from __future__ import annotations

import re
from typing import Any

from rich.console import Console, ConsoleOptions, ConsoleRenderable, RenderableType, RenderHook, RenderResult
from rich.segment import Segment
from rich.text import Text

# C0 controls but newline and tab, DEL, C1 controls, and the bidirectional overrides
# and isolates (which reorder what follows them on the line: "Trojan source")
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# the same, and line breaks and tabs too: for one-line fields (ids, file names)
_UNSAFE_ONE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20:
        return chr(0x2400 + code)  # the Unicode control pictures: ␛ for ESC, ␊ for a line feed
    if code == 0x7F:
        return "␡"
    return f"<U+{code:04X}>"


def printable(text: str) -> str:
    """`text` with every control character but newline and tab shown as a symbol."""
    return _UNSAFE.sub(_visible, text)


def one_line(text: str) -> str:
    """`text` as one line: control characters, line breaks and tabs shown as symbols."""
    return _UNSAFE_ONE_LINE.sub(_visible, text)


def plain(text: str, style: str = "") -> Text:
    """Outside text for a table cell or a line: `Text`, so `[...]` in it is not markup."""
    return Text(printable(text), style=style)


class _Printable:
    """A renderable whose text segments have their control characters made visible."""

    def __init__(self, inner: ConsoleRenderable | RenderableType) -> None:
        self.inner = inner

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for segment in console.render(self.inner, options):
            if segment.control or not _UNSAFE.search(segment.text):
                yield segment
            else:
                yield Segment(printable(segment.text), segment.style)


class _PrintableHook(RenderHook):
    def process_renderables(self, renderables: list[ConsoleRenderable]) -> list[ConsoleRenderable]:
        return [_Printable(r) for r in renderables]


class SafeConsole(Console):
    """A rich Console that never writes a control character from the text it shows."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.push_render_hook(_PrintableHook())
