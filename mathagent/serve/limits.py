"""What one request may ask of the service, and the error a request gets when it asks for more.

Every refusal is a JSON body that says which limit was hit, what is allowed
and what the request had, so a client can fix it without reading the
server's logs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

MIB = 1024 * 1024


@dataclass(frozen=True)
class ServeLimits:
    """Limits per request and for the whole service (defaults as in `[serve]` of mathagent.toml)."""

    max_body_bytes: int = 4 * MIB  # a request body larger than this is refused unread (413)
    max_snippets: int = 256  # snippets, codes or tasks in one request
    max_code_bytes: int = MIB  # one snippet's code (the verifier's --max-bytes)
    default_timeout_s: float = 60.0  # per check, when a request names none
    max_timeout_s: float = 300.0  # a request may ask for at most this
    max_queue: int = 512  # checks queued or running, and requests in progress, at once
    header_timeout_s: float = 10.0  # a request's headers must arrive within this (from its first byte)
    body_timeout_s: float = 30.0  # and its body within this after them
    max_receiving: int = 256  # requests still arriving at once (at the cap the longest-arriving one is dropped)


class Refused(Exception):
    """A request the service answers with an HTTP error instead of checking it."""

    def __init__(
        self,
        status: int,
        error: str,
        detail: str,
        limit: str | None = None,
        allowed: float | None = None,
        got: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error  # a stable code: limit_exceeded, invalid_request, invalid_json, unauthorized, ...
        self.detail = detail  # one sentence for people
        self.limit = limit  # which limit, as the [serve] key or flag that sets it
        self.allowed = allowed
        self.got = got
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.error, "detail": self.detail}
        if self.limit is not None:
            body.update(limit=self.limit, allowed=self.allowed, got=self.got)
        return body


def over_limit(limit: str, what: str, allowed: float | int, got: float | int, *, status: int = 413) -> Refused:
    return Refused(
        status, "limit_exceeded", f"{what}: {got:g} is over the limit of {allowed:g} ({limit})", limit, allowed, got
    )


def invalid(detail: str) -> Refused:
    return Refused(422, "invalid_request", detail)


def check_count(limits: ServeLimits, count: int, *, kind: str) -> None:
    """Refuse a request with nothing to check, or more than a request may hold."""
    if count == 0:
        raise invalid(f"`{kind}` is empty: send at least one")
    if count > limits.max_snippets:
        raise over_limit("max_snippets", f"too many {kind} in one request", limits.max_snippets, count)


def check_batch(limits: ServeLimits, items: Iterable[tuple[str, str]], *, kind: str) -> None:
    """Refuse a batch of (id, code) that is empty, too long, has a repeated id or an oversized code."""
    items = list(items)
    check_count(limits, len(items), kind=kind)
    seen: set[str] = set()
    for ident, code in items:
        if ident in seen:
            raise invalid(f"`{kind}` ids must be unique: {ident!r} appears more than once")
        seen.add(ident)
        size = len(code.encode("utf-8", "surrogatepass"))  # a lone surrogate is not refused here: see routes
        if size > limits.max_code_bytes:
            raise over_limit("max_bytes", f"the code of {ident!r} is too large (bytes)", limits.max_code_bytes, size)


def check_timeout(limits: ServeLimits, timeout: float | None) -> float:
    """The time limit per check for a request: its own (above 0, at most the cap) or the default."""
    if timeout is None:
        return min(limits.default_timeout_s, limits.max_timeout_s)
    if not timeout > 0:
        raise invalid(f"`timeout` must be a number of seconds above 0 (got {timeout:g})")
    if timeout > limits.max_timeout_s:
        raise over_limit(
            "max_timeout", "`timeout` is above the server's cap (seconds)", limits.max_timeout_s, timeout, status=422
        )
    return float(timeout)
