"""Which node (or engine replica) takes the next piece of work.

Pure logic, no Ray. Each member has a capacity (a node: its Lean workers; a
replica: its requests in flight) and is given at most `depth` times that at
once; beyond it, work waits here on the driver. So nodes are never flooded,
and little is in flight on a node that may be lost.

With a key (a check's header), members are tried in rendezvous-hash order
for that key: checks under one header go to the same node while it has an
idle worker, so its warm Lean servers are reused; when it is busy they spill
to the next node in that header's order (which then keeps it warm too). Two
headers usually prefer different nodes. Without a key, the least loaded
member takes the work.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class NoMembers(Exception):
    """Nothing is left to take the work (every node was lost, or none qualifies)."""


def _rank(key: str, name: str) -> bytes:
    return hashlib.blake2b(f"{key}\0{name}".encode(), digest_size=8).digest()


@dataclass(eq=False)
class _Waiter:
    key: str | None
    eligible: Callable[[Any], bool] | None
    future: asyncio.Future[str]


class Router(Generic[T]):
    def __init__(self, depth: int = 2) -> None:
        self.depth = depth
        self._members: dict[str, T] = {}
        self._capacity: dict[str, int] = {}
        self._load: dict[str, int] = {}
        self._waiters: deque[_Waiter] = deque()

    def add(self, name: str, member: T, capacity: int) -> None:
        self._members[name] = member
        self._capacity[name] = max(1, capacity)
        self._load[name] = 0
        self._dispatch()

    def remove(self, name: str) -> T | None:
        """Take a member out (its node was lost); None if it was gone already."""
        member = self._members.pop(name, None)
        self._capacity.pop(name, None)
        self._load.pop(name, None)
        self._dispatch()  # waiters go elsewhere, or learn that nothing is left
        return member

    def members(self) -> dict[str, T]:
        return dict(self._members)

    def load(self, name: str) -> int:
        return self._load.get(name, 0)

    def __len__(self) -> int:
        return len(self._members)

    def pick(self, key: str | None, eligible: Callable[[T], bool] | None = None) -> str | None:
        """The member to take work now, or None when every eligible one is at its limit.
        Raises NoMembers when no member is eligible at all."""
        names = [n for n in self._members if eligible is None or eligible(self._members[n])]
        if not names:
            raise NoMembers
        if key is not None:
            names.sort(key=lambda n: _rank(key, n))
            for name in names:
                if self._load[name] < self._capacity[name]:
                    return name
        spare = [n for n in names if self._load[n] < self.depth * self._capacity[n]]
        if not spare:
            return None
        return min(spare, key=lambda n: self._load[n] / self._capacity[n])

    @asynccontextmanager
    async def lease(self, key: str | None, eligible: Callable[[T], bool] | None = None) -> AsyncIterator[tuple[str, T]]:
        """Wait for a member with room (first come, first served), count the work
        against it while inside."""
        while True:
            name = self.pick(key, eligible) if not self._waiters else None  # no overtaking those who wait
            if name is not None:
                self._load[name] += 1
            else:
                if not any(eligible is None or eligible(m) for m in self._members.values()):
                    raise NoMembers
                waiter = _Waiter(key, eligible, asyncio.get_running_loop().create_future())
                self._waiters.append(waiter)
                self._dispatch()  # those ahead may not be able to use what is free; this one may
                try:
                    name = await waiter.future  # counted against its member by `_dispatch`
                except asyncio.CancelledError:
                    self._withdraw(waiter)
                    raise
            if name in self._members:
                break
            self._load.pop(name, None)  # handed a member that was lost before this waiter woke up
        try:
            yield name, self._members[name]
        finally:
            if name in self._load:
                self._load[name] -= 1
                self._dispatch()

    def _withdraw(self, waiter: _Waiter) -> None:
        """A waiter was cancelled: out of the queue, and a slot it was handed goes to the next."""
        if waiter in self._waiters:
            self._waiters.remove(waiter)
        future = waiter.future
        if future.done() and not future.cancelled() and future.exception() is None:
            name = future.result()
            if name in self._load:
                self._load[name] -= 1
        self._dispatch()

    def _has_room(self) -> bool:
        return any(self._load[n] < self.depth * self._capacity[n] for n in self._members)

    def _dispatch(self) -> None:
        """Hand free slots to waiters, oldest first; tell them when nothing they can use is left."""
        for waiter in list(self._waiters):
            if not self._has_room() and self._members:
                return
            if waiter.future.done():
                self._waiters.remove(waiter)
                continue
            try:
                name = self.pick(waiter.key, waiter.eligible)
            except NoMembers:
                self._waiters.remove(waiter)
                waiter.future.set_exception(NoMembers())
                continue
            if name is None:
                continue  # a member it cannot use has room: a later waiter may take it
            self._waiters.remove(waiter)
            self._load[name] += 1
            waiter.future.set_result(name)
