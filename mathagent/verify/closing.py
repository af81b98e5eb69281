"""`async with` for objects that release what they hold (Lean processes, nodes' sessions) with `aclose()`."""

from __future__ import annotations

from types import TracebackType
from typing import TypeVar

_Self = TypeVar("_Self", bound="AsyncClosing")


class AsyncClosing:
    """Leaving `async with` calls `aclose()`, however the block ends."""

    async def __aenter__(self: _Self) -> _Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        raise NotImplementedError
