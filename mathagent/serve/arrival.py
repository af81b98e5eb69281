"""Requests that are still arriving: deadlines for their headers and body, and a cap on how many at once.

uvicorn bounds idle keep-alive connections, but not one that is still
sending its request: a client that sends its headers a byte a minute, or
announces `Content-Length: 1000` and sends one byte, would hold its
connection for ever. Here every request has

- `header_timeout` seconds from its first byte (its connection, for the
  first request) to the end of its headers, and
- `body_timeout` seconds from there to the end of its body;

a request past its deadline gets 408 and its connection is closed. At most
`max_receiving` requests arrive at once: at the cap, the one that has been
arriving longest makes room for a newcomer (408) if it has taken over a
second, else the newcomer is turned away (503), so a burst of real clients
is never cut off and stalled ones cannot keep others out.

This wraps the HTTP protocol class uvicorn picks (httptools or h11) from the
outside. Of its insides it reads only the current request (`cycle`: whether
its body is complete, its response begun or done) and hooks the two events
both classes have (`data_received`, `on_response_complete`).
A deadline in the ASGI layer could not see headers, and a stalled body is
better cut where its bytes arrive.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, cast

from mathagent.serve.limits import Refused, ServeLimits

_LIMIT = {"headers": "header_timeout", "body": "body_timeout"}  # the [serve] key that sets each deadline
# At the cap, a request that has been arriving for less than this is not dropped for a newcomer:
# real clients send their request in milliseconds, and a burst of them must not evict one another.
MIN_AGE_S = 1.0


class Arrivals:
    """The requests being received, oldest first, and the cap on them."""

    def __init__(self, limits: ServeLimits, counted: Callable[[int], None]) -> None:
        self.limits = limits
        self.counted = counted  # the status of each refusal made here, for /metrics
        self._arriving: dict[_Deadlines, float] = {}  # insertion order: the longest-arriving first

    def __len__(self) -> int:
        return len(self._arriving)

    def enter(self, request: _Deadlines, now: float) -> bool:
        """Count `request` in, making room by dropping the longest-arriving one if need be;
        False when there is no room for it."""
        if len(self._arriving) >= self.limits.max_receiving:
            oldest, since = next(iter(self._arriving.items()))
            if now - since < MIN_AGE_S:
                return False
            cap = self.limits.max_receiving
            detail = (
                f"the server is receiving {cap} requests, the most it takes at once, and this one had taken "
                f"longest to arrive ({now - since:.1f} s)"
            )
            oldest.refuse(Refused(408, "limit_exceeded", detail, "max_receiving", cap, cap + 1))
        self._arriving[request] = now
        return True

    def leave(self, request: _Deadlines) -> None:
        self._arriving.pop(request, None)


class _Deadlines(asyncio.Protocol):
    """What is added to uvicorn's HTTP protocol (see `with_deadlines`)."""

    arrivals: Arrivals  # set on the class `with_deadlines` makes
    # uvicorn's protocol state this reads
    transport: asyncio.Transport
    cycle: Any
    loop: asyncio.AbstractEventLoop

    _phase: str | None = None  # "headers" or "body" while a request arrives, else None
    _timer: asyncio.TimerHandle | None = None
    _timing: Any = None  # the request whose body is on the clock, or last was
    _arrived: Any = None  # the last request that arrived whole

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._begin()

    def data_received(self, data: bytes) -> None:
        if self._phase is None and (self.cycle is None or self.cycle.response_complete):
            self._begin()  # the first byte of the next request on a kept-alive connection
        if self.transport.is_closing():
            return  # refused: what it sent is not read
        super().data_received(data)
        self._advance()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]  # uvicorn's protocols have it
        self._advance()  # a pipelined request read while this one was answered has its turn now

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish()
        super().connection_lost(exc)

    def _begin(self) -> bool:
        if self.transport.is_closing():
            return False
        if not self.arrivals.enter(self, time.monotonic()):
            cap = self.arrivals.limits.max_receiving
            detail = f"the server is receiving {cap} requests, the most it takes at once; retry in a second"
            self.refuse(Refused(503, "limit_exceeded", detail, "max_receiving", cap, cap + 1, {"Retry-After": "1"}))
            return False
        self._arm("headers", self.arrivals.limits.header_timeout_s)
        return True

    def _advance(self) -> None:
        """Move the clock on as the request arrives: its headers are in once uvicorn made a request of them."""
        cycle = self.cycle
        if cycle is None or cycle is self._arrived:
            return
        if getattr(self, "pipeline", None):
            # httptools read it ahead while an earlier request is answered, and stopped reading: its body
            # cannot arrive yet, so its clock starts with its turn (see on_response_complete)
            self._finish()
            return
        if cycle is not self._timing:
            if self._phase is None and not self._begin():
                return
            self._timing = cycle
            self._arm("body", self.arrivals.limits.body_timeout_s)
        if not cycle.more_body:
            self._arrived = cycle
            self._finish()

    def _arm(self, phase: str, seconds: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._phase = phase
        self._timer = self.loop.call_later(seconds, self._expired, phase, seconds)

    def _finish(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._phase = None
        self.arrivals.leave(self)

    def _expired(self, phase: str, seconds: float) -> None:
        self._timer = None
        detail = f"the request's {phase} did not arrive within {seconds:g} s"
        self.refuse(Refused(408, "limit_exceeded", detail, _LIMIT[phase], seconds, seconds))

    def refuse(self, refusal: Refused) -> None:
        """Answer `refusal` and close the connection (only close it when the app has begun answering
        the request itself: a 401 or 413 sent before its body arrived)."""
        answering = self._phase == "body" and self.cycle is not None and self.cycle.response_started
        self._finish()
        if self.transport.is_closing():
            return
        if not answering:
            self.transport.write(_raw_response(refusal))
        self.arrivals.counted(refusal.status)
        self.transport.close()  # the request's handler, if it runs, sees the client leave


def with_deadlines(protocol: type[asyncio.Protocol], arrivals: Arrivals) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol class `protocol`, with `arrivals`' deadlines and cap (`uvicorn.Config(http=...)`)."""
    made = type(f"Deadlined{protocol.__name__}", (_Deadlines, protocol), {"arrivals": arrivals})
    return cast("type[asyncio.Protocol]", made)


def _raw_response(refusal: Refused) -> bytes:
    """A whole HTTP/1.1 response that ends the connection, for answering outside the app."""
    body = json.dumps(refusal.body()).encode("utf-8")
    head = [
        f"HTTP/1.1 {refusal.status} {HTTPStatus(refusal.status).phrase}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: close",
        *(f"{name.lower()}: {value}" for name, value in refusal.headers.items()),
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
