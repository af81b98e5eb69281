"""What every request passes before the API sees it: the key, the body size, the number in progress.

A plain ASGI middleware, so it acts before a byte of the body is read: a
request without the key, or announcing a body over the limit, is answered
at once. A body sent without a length is counted as it arrives and refused
(413) as soon as it goes over. Then the whole body is read, and only then
does the request count as in progress: those are capped (429 with
`Retry-After`), so a client that sends its body slowly, or never, takes no
one's place (the server's deadlines and its cap on requests still arriving,
in arrival.py, end it). With the body limit that bounds the memory requests
can hold. The key is compared in constant time. The API docs (`/docs`,
`/openapi.json`) need no key; they hold no data.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from mathagent.serve.limits import Refused, over_limit
from mathagent.serve.metrics import ServiceCounters

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PUBLIC = frozenset({"/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc"})


class Guard:
    """ASGI middleware: API key, body size, requests in progress, responses counted by status."""

    def __init__(
        self, app: ASGIApp, *, api_key: str | None, max_body_bytes: int, max_requests: int, metrics: ServiceCounters
    ) -> None:
        self.app = app
        self.key = api_key.encode("utf-8") if api_key else None
        self.max_body = max_body_bytes
        self.max_requests = max_requests
        self.metrics = metrics
        self.in_progress = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status: list[int] = []

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        try:
            await self._guarded(scope, receive, counting_send)
        finally:
            if status:
                self.metrics.response(status[0])

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] in PUBLIC:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v for k, v in scope.get("headers", [])}
        refusal = self._authorize(headers.get("authorization")) or self._announced_size(headers.get("content-length"))
        if refusal is not None:
            await respond(send, refusal)
            return
        # the whole body first: a request counts against the limit only once it has arrived, so clients
        # that send slowly (or stop) hold no place in it (the server's deadlines end them: see arrival.py)
        body = await self._read_body(receive)
        if isinstance(body, Refused):
            await respond(send, body)
            return
        if body is None:
            return  # the client left (or was cut off) before its body arrived: no one to answer
        if self.in_progress >= self.max_requests:
            detail = f"too many requests in progress ({self.in_progress}); retry in a second"
            await respond(
                send,
                Refused(
                    429,
                    "queue_full",
                    detail,
                    "max_queue",
                    self.max_requests,
                    self.in_progress + 1,
                    {"Retry-After": "1"},
                ),
            )
            return
        self.in_progress += 1
        try:
            await self.app(scope, _replay(body, receive), send)
        finally:
            self.in_progress -= 1

    async def _read_body(self, receive: Receive) -> bytes | Refused | None:
        """The request body; a refusal as soon as it goes over the limit (a body sent without a
        length); None when the client disconnects first."""
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.max_body:
                return self._too_large(received)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _authorize(self, header: bytes | None) -> Refused | None:
        if self.key is None:
            return None
        challenge = {"WWW-Authenticate": "Bearer"}
        if header is None:
            return Refused(401, "unauthorized", "missing API key: send `Authorization: Bearer KEY`", headers=challenge)
        scheme, _, token = header.partition(b" ")
        # compare_digest takes as long for any wrong key of a given length: the key is not guessed byte by byte
        if scheme.lower() != b"bearer" or not hmac.compare_digest(token.strip(), self.key):
            return Refused(401, "unauthorized", "wrong API key", headers=challenge)
        return None

    def _announced_size(self, header: bytes | None) -> Refused | None:
        if header is None:
            return None
        try:
            size = int(header)
        except ValueError:
            return Refused(400, "invalid_request", "the Content-Length header is not a number")
        if size > self.max_body:
            return over_limit("max_body_bytes", "the request body is too large (bytes)", self.max_body, size)
        return None

    def _too_large(self, received: int) -> Refused:
        return over_limit("max_body_bytes", "the request body is too large (bytes, at least)", self.max_body, received)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The app's `receive`: the body already read, then the connection's own messages (a disconnect)."""
    pending = True

    async def replayed() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def respond(send: Send, refusal: Refused) -> None:
    """Send a refusal as a JSON response."""
    body = json.dumps(refusal.body()).encode("utf-8")
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in refusal.headers.items()]
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
