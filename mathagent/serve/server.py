"""Running the app under uvicorn, and stopping it without leaving Lean behind.

On SIGTERM or Ctrl-C uvicorn stops accepting connections and waits for the
requests in progress; the service stops admitting checks and, after the
grace period, cancels the ones still running (their requests get a 503),
so every request is answered and the process exits with no Lean process
left. uvicorn's own deadline, a little later, is the backstop.
"""

from __future__ import annotations

import signal
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

import uvicorn
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from mathagent.errors import ConfigError
from mathagent.serve.app import create_app
from mathagent.serve.arrival import Arrivals, with_deadlines
from mathagent.serve.service import CheckService


@dataclass(frozen=True)
class Listen:
    host: str = "127.0.0.1"
    port: int = 8000
    grace_s: float = 30.0
    api_key: str | None = None


class _Server(uvicorn.Server):
    """uvicorn's server, telling the service when a stop signal arrives and where it listens."""

    def __init__(
        self, config: uvicorn.Config, service: CheckService, grace_s: float, ready: Callable[[str], None]
    ) -> None:
        super().__init__(config)
        self.service = service
        self.grace_s = grace_s
        self.ready = ready

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self.service.drain_soon(self.grace_s)  # a signal handler: hand it to the event loop

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            bound = [s.getsockname() for server in self.servers for s in server.sockets]
            host, port = bound[0][0], bound[0][1]
            shown = f"[{host}]" if ":" in host else host
            self.ready(f"http://{shown}:{port}")


def run(service: CheckService, listen: Listen, ready: Callable[[str], None]) -> None:
    """Serve until a stop signal; `ready(url)` is called once the socket listens."""
    app = create_app(service, api_key=listen.api_key)
    arrivals = Arrivals(service.limits, service.metrics.response)
    config = uvicorn.Config(
        app,
        # uvicorn's own choice (httptools, else h11), with deadlines for requests still arriving
        http=with_deadlines(AutoHTTPProtocol, arrivals),
        host=listen.host,
        port=listen.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=int(listen.grace_s) + 10,
        lifespan="on",
        # the event loop the verifier is built and tested on (uvloop, where installed, spawns processes
        # differently: it lets them inherit descriptors Python marked inheritable)
        loop="asyncio",
    )
    server = _Server(config, service, listen.grace_s, ready)
    sockets = [_listen(listen.host, listen.port)]
    if threading.current_thread() is not threading.main_thread():
        server.run(sockets)
        return
    # uvicorn re-sends SIGTERM to itself once it has shut down; end quietly then (exit status 0)
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        server.run(sockets)
    except _Terminated:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket, or a ConfigError that says why there is none (uvicorn would only log it)."""
    hint = "choose another --port (0: any free one), or stop what is listening there"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}", hint="check --host") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}", hint=hint) from exc
    return sock  # not inheritable (Python's default): Lean processes must not hold the listening socket


class _Terminated(Exception):
    """SIGTERM arrived outside uvicorn's own handling (after its graceful shutdown, or before it started)."""


def _terminated(signum: int, frame: FrameType | None) -> None:
    raise _Terminated
