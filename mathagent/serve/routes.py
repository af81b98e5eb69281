"""The endpoints: mathagent's own (`/v1/...`, `/metrics`) and kimina-lean-server's (`/api/check`, `/verify`, `/health`).

Each one is thin: read the request, let `limits` refuse what is too much,
hand the tasks to the shared `CheckService`, and write the verdicts in the
API's form. While checks run, the client's connection is watched: if it
goes away, the checks are cancelled and their Lean processes killed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ValidationError

from mathagent.jsonl import BadJSON, dumps, parse_json, unencodable
from mathagent.serve import kimina, native
from mathagent.serve.limits import Refused, check_batch, check_count, check_timeout
from mathagent.serve.metrics import CONTENT_TYPE
from mathagent.serve.service import CheckService
from mathagent.serve.statements import Statements
from mathagent.verify import verdict as codes
from mathagent.verify.tasks import BadRow, VerifyTask, bad_row_verdict
from mathagent.verify.verdict import Verdict, VerdictKind
from mathagent.vocabulary import SandboxKind

router = APIRouter()

CLIENT_GONE = 499  # nginx's "client closed request": never seen by the client, counted in /metrics


def _service(request: Request) -> CheckService:
    service: CheckService = request.app.state.service
    return service


def _json(value: Any, status: int = 200) -> Response:
    return Response(dumps(value), status_code=status, media_type="application/json")


async def _until_disconnected(request: Request) -> None:
    """Return when the client closes its connection (the body has been read by now)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def _run(request: Request, tasks: Sequence[VerifyTask], timeout_s: float) -> list[Verdict] | None:
    """The verdicts, or None when the client went away first (its checks are then cancelled)."""
    checks = asyncio.ensure_future(_service(request).check(tasks, timeout_s))
    gone = asyncio.ensure_future(_until_disconnected(request))
    try:
        await asyncio.wait({checks, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (gone, checks):
            if not task.done():
                task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await gone
    if not checks.done() or checks.cancelled():
        with contextlib.suppress(asyncio.CancelledError):
            await checks  # cancelled: waits until every Lean process of the request is gone
        return None
    return checks.result()


async def _run_in_order(
    request: Request, items: Sequence[VerifyTask | Verdict], timeout_s: float
) -> list[Verdict] | None:
    """`_run` on the tasks among `items`; the verdicts already given stay in their places."""
    tasks = [item for item in items if isinstance(item, VerifyTask)]
    verdicts = await _run(request, tasks, timeout_s) if tasks else []
    if verdicts is None:
        return None
    found = iter(verdicts)
    return [item if isinstance(item, Verdict) else next(found) for item in items]


# Models the request bodies' schemas refer to, for the OpenAPI document's components (see app.py).
SCHEMAS: dict[str, Any] = {}
Body = TypeVar("Body", bound=BaseModel)


def json_body(model: type[BaseModel], more: dict[str, Any] | None = None) -> dict[str, Any]:
    """The OpenAPI request body of an endpoint that parses `model` itself (see `parse_body`)."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    SCHEMAS.update(schema.pop("$defs", {}))
    content = {"application/json": {"schema": schema}, **(more or {})}
    return {"requestBody": {"required": True, "content": content}}


async def parse_body(request: Request, model: type[Body]) -> Body:
    """The body as `model`: JSON whatever the Content-Type says (kimina's clients and curl -d alike)."""
    try:
        value = parse_json(await request.body())
    except BadJSON as exc:
        raise Refused(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise Refused(422, "invalid_request", f"{where}: {first['msg']}") from None


# ---------------------------------------------------------------- mathagent's API


@router.post(
    "/v1/verify",
    tags=["mathagent"],
    summary="Check tasks; verdicts as `mathagent verify --json` prints them",
    openapi_extra=json_body(
        native.NativeRequest,
        {"application/x-ndjson": {"schema": {"type": "string", "description": "a verify --input file"}}},
    ),
)
async def verify_native(
    request: Request,
    timeout: float | None = Query(None, description="Seconds per check (for JSON Lines bodies)"),
) -> Response:
    service = _service(request)
    parsed = native.parse(await request.body(), request.headers.get("content-type", ""), timeout)
    timeout_s = check_timeout(service.limits, parsed.timeout)
    # rows are as the CLI reads them: an oversized one is a `too_large` verdict, ids may repeat
    check_count(service.limits, len(parsed.items), kind="tasks")
    items = [bad_row_verdict(item) if isinstance(item, BadRow) else item for item in parsed.items]
    verdicts = await _run_in_order(request, items, timeout_s)
    if verdicts is None:
        return Response(status_code=CLIENT_GONE)
    media = "application/x-ndjson" if parsed.lines else "application/json"
    return Response(native.render(verdicts, parsed.lines), media_type=media)


@router.get("/v1/health", tags=["mathagent"], summary="Lean, library, pool, queue and limits")
async def health_native(request: Request) -> Response:
    return _json(_service(request).health())


@router.get("/metrics", tags=["mathagent"], summary="Prometheus metrics", response_class=PlainTextResponse)
async def metrics(request: Request) -> Response:
    service = _service(request)
    return Response(service.metrics.render(service.gauges()), media_type=CONTENT_TYPE)


# ---------------------------------------------------------------- kimina-lean-server's API


async def _answer_kimina(
    request: Request,
    items: list[tuple[str, str]],
    *,
    kind: str,
    timeout: float | None,
    result: Callable[[str, Verdict, float], dict[str, Any]],
) -> Response:
    """Check (id, whole file) pairs and answer `{"results": [result(id, verdict, timeout_s), ...]}`.
    With --tasks, each id names the statement its file must prove; an id that names none gets an
    error verdict of its own (the rest of the batch still runs)."""
    service = _service(request)
    check_batch(service.limits, items, kind=kind)
    timeout_s = check_timeout(service.limits, timeout)
    statements = service.config.statements
    tasks = [_snippet_task(statements, ident, code) for ident, code in items]
    verdicts = await _run_in_order(request, tasks, timeout_s)
    if verdicts is None:
        return Response(status_code=CLIENT_GONE)
    return _json({"results": [result(ident, v, timeout_s) for (ident, _), v in zip(items, verdicts, strict=True)]})


def _snippet_task(statements: Statements | None, ident: str, code: str) -> VerifyTask | Verdict:
    """The check for one snippet, or the error verdict it gets without one (the rest of its batch still runs)."""
    problem = unencodable(code)
    if problem is not None:
        message = f"the code of snippet {ident!r} has {problem}: Lean reads UTF-8 text"
        return Verdict(ident, VerdictKind.ERROR, [codes.BAD_INPUT], message, sandbox=SandboxKind.NOT_RUN)
    if statements is None:
        return VerifyTask(id=ident, full_code=code, source=f"snippet {ident}")
    task = statements.task(ident, code)
    if task is None:
        message = f"snippet id {ident!r} names no task of the server's --tasks file (use a task id, or ID#anything)"
        return Verdict(ident, VerdictKind.ERROR, [codes.BAD_INPUT], message, sandbox=SandboxKind.NOT_RUN)
    return task


@router.post(
    "/api/check",
    tags=["kimina"],
    summary="kimina-lean-server: check snippets (whole Lean files)",
    openapi_extra=json_body(kimina.CheckRequest),
)
@router.post("/api/check/", include_in_schema=False)
async def check_kimina(request: Request) -> Response:
    body = await parse_body(request, kimina.CheckRequest)
    items = [(str(s.id), s.code) for s in body.snippets]
    return await _answer_kimina(request, items, kind="snippets", timeout=body.timeout, result=kimina.repl_response)


@router.post(
    "/verify",
    tags=["kimina"],
    summary="kimina-lean-server's legacy batch endpoint",
    openapi_extra=json_body(kimina.VerifyRequest),
)
async def verify_kimina(request: Request) -> Response:
    body = await parse_body(request, kimina.VerifyRequest)
    items: list[tuple[str, str]] = []
    for code in body.codes:
        content = code.content()
        if content is None:
            raise Refused(422, "invalid_request", f"code {code.custom_id!r} has neither `proof` nor `code`")
        items.append((str(code.custom_id), content))
    return await _answer_kimina(request, items, kind="codes", timeout=body.timeout, result=kimina.backward_response)


@router.get("/health", tags=["kimina"], summary="kimina-lean-server's health check")
@router.get("/health/", include_in_schema=False)
async def health_kimina(request: Request) -> JSONResponse:
    status = "draining" if _service(request).draining else "ok"
    return JSONResponse({"status": status})
