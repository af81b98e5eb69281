"""The FastAPI application: routes, the guard in front, one CheckService for its lifetime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response

from mathagent import __version__
from mathagent.jsonl import dumps
from mathagent.serve.guard import Guard
from mathagent.serve.limits import Refused
from mathagent.serve.routes import SCHEMAS, router
from mathagent.serve.service import CheckService, ShuttingDown

DESCRIPTION = """\
Lean proof checking you can reward: every proof is checked by a real Lean in a sandbox, and rejected for
`sorry`, axioms beyond propext/Quot.sound/Classical.choice, banned commands (`#exit`, `axiom`, macros, ...)
and changed statements, not only for Lean's errors.

- **mathagent API**: `POST /v1/verify` takes `mathagent verify --input` rows and returns `verify --json` verdicts.
- **kimina-lean-server API**: `POST /api/check`, `POST /verify`, `GET /health`, as the `kimina-client` package
  expects them.

With an API key, send `Authorization: Bearer KEY`.
"""


def create_app(service: CheckService, *, api_key: str | None) -> FastAPI:
    """The app; entering its lifespan enters `service` (and leaving it stops every Lean process)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with service:
            yield

    app = FastAPI(title="mathagent", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    app.state.service = service
    app.include_router(router)

    def openapi() -> dict[str, Any]:
        # the endpoints parse their own bodies; the models those refer to go into the components
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            schema.setdefault("components", {}).setdefault("schemas", {}).update(SCHEMAS)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_exception_handler(Refused, _refused)  # type: ignore[arg-type]
    app.add_exception_handler(ShuttingDown, _shutting_down)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _invalid)  # type: ignore[arg-type]
    limits = service.limits
    app.add_middleware(
        Guard,
        api_key=api_key,
        max_body_bytes=limits.max_body_bytes,
        max_requests=limits.max_queue,
        metrics=service.metrics,
    )
    return app


def _error(body: dict[str, Any], status: int, headers: dict[str, str] | None = None) -> Response:
    """An error body as JSON that always encodes (a detail may quote a client's lone surrogate)."""
    return Response(dumps(body), status_code=status, headers=headers, media_type="application/json")


async def _refused(_: Request, exc: Refused) -> Response:
    return _error(exc.body(), exc.status, exc.headers)


async def _shutting_down(_: Request, exc: ShuttingDown) -> Response:
    return _error({"error": "shutting_down", "detail": str(exc)}, 503, {"Retry-After": "5"})


async def _invalid(_: Request, exc: RequestValidationError) -> Response:
    """FastAPI's validation errors in the service's error shape: 400 for JSON that does not parse, else 422."""
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        first = errors[0].get("ctx", {}).get("error", "")
        return _error({"error": "invalid_json", "detail": f"the body is not valid JSON: {first}"}, 400)
    first = errors[0] if errors else {}
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
    detail = f"{where or 'body'}: {first.get('msg', 'invalid')}"
    return _error({"error": "invalid_request", "detail": detail, "errors": _plain(errors)}, 422)


def _plain(errors: list[Any]) -> list[dict[str, Any]]:
    """pydantic's error list without the parts that may not be JSON (inputs, exception objects)."""
    return [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in errors]
