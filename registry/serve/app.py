"""The HTTP face of `registry serve`: FastAPI routes speaking the OpenAI API.

    POST /v1/chat/completions   POST /v1/completions   (both: "stream": true for SSE)
    GET  /v1/models             GET  /v1/models/{id}   GET /health

Invariants:
- `model` resolves once, at admission (registry/serve/routing.py), to a leased version; the
  lease ends when the response (streamed or not) ends, whatever way it ends.
- Errors are OpenAI-shaped: unknown model or version 404 (code model_not_found), a malformed
  or unsupported request 400, a body over --max-request-bytes 413 (checked while reading,
  before parsing), a full queue 429, a failed generation 500.
- The answer's `model` is the exact version that answered (NAME@VERSION), as OpenAI answers
  with a dated snapshot; `system_fingerprint` is its commit.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from registry.serve.batching import Job, Overloaded
from registry.serve.protocol import (
    ApiError,
    ChatRequest,
    CompletionRequest,
    chat_response,
    chunk,
    completion_response,
    error_body,
    model_card,
    new_id,
    usage,
)
from registry.serve.routing import Target, UnknownModel

if TYPE_CHECKING:
    from registry.serve.server import Server

DRAIN_BYTES = 64 << 20  # an oversized body is read and dropped up to this, then cut off


class BodyLimit:
    """Refuse request bodies over `max_bytes` with 413, counting what arrives (a lying or
    missing Content-Length included), before anything parses them."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(receive, send, 0)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_bytes:
                await self._refuse(receive, send, size)
                return
            chunks.append(body)
            if not message.get("more_body"):
                break
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()  # later: the disconnect, for streaming responses

        await self.app(scope, replay, send)

    async def _refuse(self, receive, send, seen: int) -> None:
        # Read (and drop) the rest of the body first, up to a bound: closing a socket with
        # unread data resets it, and the client would see a connection error, not the 413.
        more = True
        while more and seen <= DRAIN_BYTES:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            seen += len(message.get("body", b""))
            more = message.get("more_body", False)
        await self._too_large(send)

    async def _too_large(self, send) -> None:
        body = json.dumps(
            error_body(f"request body over {self.max_bytes} bytes", code="request_too_large")
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
            }
        )
        await send({"type": "http.response.body", "body": body})


def create_app(server: Server) -> FastAPI:
    """The app for one built Server (registry/serve/server.py)."""
    options, routing, engine = server.options, server.routing, server.engine

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        server.start()
        try:
            yield
        finally:
            await run_in_threadpool(server.stop)

    app = FastAPI(title="registry serve", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.add_middleware(BodyLimit, max_bytes=options.max_request_bytes)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError):
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        problems = []
        for err in exc.errors()[:3]:
            where = ".".join(str(p) for p in err.get("loc", ())[1:]) or "body"
            problems.append(f"{where}: {err.get('msg')}")
        first = exc.errors()[0].get("loc", ()) if exc.errors() else ()
        param = ".".join(str(p) for p in first[1:]) or None
        body = error_body("invalid request: " + "; ".join(problems), param=param)
        return JSONResponse(body, status_code=400)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        body = error_body(str(exc.detail), code=str(exc.status_code))
        return JSONResponse(body, status_code=exc.status_code)

    def resolve(model: str) -> Target:
        try:
            return routing.resolve(model)
        except UnknownModel as exc:
            raise ApiError(404, str(exc), param="model", code="model_not_found") from None

    def release(target: Target) -> None:
        server.free(routing.release(target))

    def fingerprint(target: Target) -> str | None:
        return target.slot.commit[:16] if target.slot else None

    def make_job(target: Target, prompt_ids: list[int], req, streaming: bool) -> Job:
        wanted = req.wanted_tokens() or options.default_max_tokens
        if wanted > options.max_tokens_limit:
            raise ApiError(
                400,
                f"max_tokens {wanted} is over this server's limit {options.max_tokens_limit}",
                param="max_tokens",
            )
        if not prompt_ids:
            raise ApiError(400, "the prompt is empty", param="prompt")
        if len(prompt_ids) + wanted > engine.context_len:
            raise ApiError(
                400,
                f"This model's maximum context length is {engine.context_len} tokens. However, "
                f"you requested {len(prompt_ids) + wanted} tokens ({len(prompt_ids)} in the "
                f"prompt, {wanted} in the completion).",
                param="messages",
                code="context_length_exceeded",
            )
        sampling = req.sampling()
        return Job(
            group=(target.key, tuple(sorted(sampling.items()))),
            prompt_ids=prompt_ids,
            max_tokens=wanted,
            stop=req.stop or [],
            sampling=sampling,
            on_text=(lambda text: None) if streaming else None,
        )

    def submit(job: Job) -> None:
        try:
            engine.batcher.submit(job)
        except Overloaded as exc:
            raise ApiError(429, str(exc), type="rate_limit_error", code="overloaded") from None

    async def complete(job: Job):
        loop = asyncio.get_running_loop()
        future = loop.create_future()

        def settle(result=None, exc=None) -> None:
            if not future.done():
                future.set_exception(exc) if exc is not None else future.set_result(result)

        job.on_done = lambda r: loop.call_soon_threadsafe(settle, r, None)
        job.on_error = lambda e: loop.call_soon_threadsafe(settle, None, e)
        submit(job)
        try:
            return await future
        except asyncio.CancelledError:
            job.cancelled.set()
            raise
        except Exception as exc:
            raise ApiError(500, f"generation failed: {exc}", type="server_error") from None

    def stream(kind: str, job: Job, target: Target, include_usage: bool) -> StreamingResponse:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        job.on_text = lambda text: loop.call_soon_threadsafe(queue.put_nowait, ("text", text))
        job.on_done = lambda r: loop.call_soon_threadsafe(queue.put_nowait, ("done", r))
        job.on_error = lambda e: loop.call_soon_threadsafe(queue.put_nowait, ("error", e))
        submit(job)  # a full queue is a 429 before any byte of the stream
        rid = new_id("chatcmpl" if kind == "chat" else "cmpl")
        model, fp = target.model, fingerprint(target)

        def sse(body: dict[str, Any]) -> str:
            return f"data: {json.dumps(body)}\n\n"

        async def events() -> AsyncIterator[str]:
            try:
                if kind == "chat":
                    yield sse(chunk(kind, rid, model, fp, role=True, text=""))
                while True:
                    what, payload = await queue.get()
                    if what == "text":
                        yield sse(chunk(kind, rid, model, fp, text=payload))
                    elif what == "done":
                        yield sse(chunk(kind, rid, model, fp, finish=payload.finish_reason))
                        if include_usage:
                            u = usage(payload.prompt_tokens, payload.completion_tokens)
                            yield sse(chunk(kind, rid, model, fp, usage_=u))
                        yield "data: [DONE]\n\n"
                        return
                    else:
                        yield sse(error_body(f"generation failed: {payload}", "server_error"))
                        return
            finally:
                job.cancelled.set()  # a client gone mid-stream frees its batch row
                release(target)

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    async def serve(kind: str, req, encode, *args):
        req.check_supported()
        target = resolve(req.model)
        streaming = False
        try:
            prompt_ids = await run_in_threadpool(encode, *args)
            job = make_job(target, prompt_ids, req, bool(req.stream))
            if req.stream:
                include = bool(req.stream_options and req.stream_options.include_usage)
                response = stream(kind, job, target, include)
                streaming = True
                return response
            result = await complete(job)
            build = chat_response if kind == "chat" else completion_response
            prefix = "chatcmpl" if kind == "chat" else "cmpl"
            return build(new_id(prefix), target.model, fingerprint(target), result)
        finally:
            if not streaming:
                release(target)

    @app.post("/v1/chat/completions")
    async def chat_completions(req: ChatRequest):
        return await serve("chat", req, engine.encode_chat, req.chat())

    @app.post("/v1/completions")
    async def completions(req: CompletionRequest):
        return await serve("text", req, engine.encode_text, req.text())

    def cards() -> list[dict[str, Any]]:
        created = int(server.started)
        rows = [model_card(r, created) for r in routing.models()]
        base = {"id": routing.base_ids[0], "kind": "base", "owned_by": "base"}
        return rows + [model_card(base, created) | {"owned_by": "base"}]

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": cards()}

    @app.get("/v1/models/{model:path}")
    async def model(model: str):
        for card in cards():
            if card["id"] == model:
                return card
        raise ApiError(
            404, f"The model `{model}` does not exist here", param="model", code="model_not_found"
        )

    @app.get("/health")
    async def health():
        return server.health_view()

    return app
