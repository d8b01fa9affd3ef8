"""The Starlette app: OpenAI's completions and models endpoints, a health check, the API key.

POST /v1/completions   text completions, whole or streamed as server-sent events
GET  /v1/models        the one model this server was started with
GET  /health           status, model, queue depth and counters
/v1/chat/completions   404: GPT-2 continues text, it is not a chat model

Every refusal answers in OpenAI's error shape. Requests never name files: the model is chosen
when the server starts, and a request's "model" must be its id. The handlers only read and
write HTTP; the generations run on the EngineQueue's thread, and their updates come back to the
event loop through call_soon_threadsafe.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from app.engine.errors import user_message
from app.engine.protocol import TextEngine
from app.serve.api_error import ApiError, error_body
from app.serve.completion_request import CompletionRequest, parse_completion_request
from app.serve.completion_response import ChoiceBuilder, completion_json, usage_json
from app.serve.engine_queue import (
    EngineQueue,
    Generation,
    Job,
    JobEnded,
    QueueClosedError,
    Started,
    Token,
    Update,
)

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20  # 1 MiB: a long document and every sampler, with room to spare
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


@dataclass(frozen=True)
class ServedModel:
    id: str  # the model folder's name
    created: int  # when the folder was last changed (Unix seconds)
    fingerprint: str  # OpenAI's system_fingerprint: what a seed's replay depends on
    vocab_size: int | None  # logit_bias keys are checked against it when known

    @classmethod
    def of(cls, model_dir: Path, engine: TextEngine) -> ServedModel:
        info = engine.info
        tokenizer = getattr(engine, "tokenizer", None)
        return cls(id=model_dir.resolve().name, created=int(model_dir.stat().st_mtime),
                   fingerprint=f"ghostpen-{info.precision}-{info.provider}",
                   vocab_size=getattr(tokenizer, "vocab_size", None))


def build_app(queue: EngineQueue, model: ServedModel, api_key: str | None = None,
              allowed_hosts: Collection[str] | None = None,
              max_body_bytes: int = MAX_BODY_BYTES) -> Starlette:
    """The app; `allowed_hosts`: the Host header names accepted (None: any). A server on
    loopback accepts only loopback names, so that a web page cannot reach it through a name
    of its own that resolves to 127.0.0.1 (DNS rebinding)."""
    api = _CompletionsApi(queue, model, max_body_bytes)
    routes = [
        Route("/v1/completions", api.completions, methods=["POST"]),
        Route("/v1/models", api.list_models, methods=["GET"]),
        Route("/v1/models/{model_id:path}", api.get_model, methods=["GET"]),
        Route("/v1/chat/completions", _not_a_chat_model, methods=["GET", "POST"]),
        Route("/health", api.health, methods=["GET"]),
    ]
    middleware = [Middleware(_GateMiddleware, api_key=api_key, allowed_hosts=allowed_hosts)]
    application = Starlette(routes=routes, middleware=middleware, exception_handlers={
        ApiError: _api_error_response,
        HTTPException: _http_error_response,
        Exception: _server_error_response,
    })
    application.state.api = api
    return application


def set_served_model(application: Starlette, model: ServedModel) -> None:
    """Answer as `model` from the next request on (the window loaded another model)."""
    application.state.api.model = model


class _CompletionsApi:
    def __init__(self, queue: EngineQueue, model: ServedModel, max_body_bytes: int) -> None:
        self.queue = queue
        self.model = model
        self.max_body_bytes = max_body_bytes

    async def completions(self, request: Request) -> Response:
        body = await _read_body(request, self.max_body_bytes)
        model = self.model
        completion = parse_completion_request(body, model.id, model.vocab_size)
        updates = _UpdateChannel()
        job = Job(generations=_generations(completion), emit=updates.put,
                  n_alternatives=completion.logprobs or 0,
                  prompt_pieces=completion.echo and completion.logprobs is not None)
        try:
            self.queue.submit(job)
        except QueueClosedError as error:
            raise ApiError(503, str(error), kind="server_error") from error
        # The client leaving (its connection closed) cancels the job: at the next token when
        # it runs, at its turn when it waits.
        watcher = asyncio.create_task(_cancel_on_disconnect(request, job))
        stream = _CompletionStream(completion, model, updates)
        if completion.stream:
            return StreamingResponse(stream.events(job, watcher), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache"})
        try:
            return JSONResponse(await stream.whole())
        finally:
            watcher.cancel()

    async def list_models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [self._model_json()]})

    async def get_model(self, request: Request) -> Response:
        if request.path_params["model_id"] != self.model.id:
            raise ApiError(404, f"The model {request.path_params['model_id']!r} does not exist "
                                f"here: this server serves {self.model.id!r}.",
                           param="model", code="model_not_found")
        return JSONResponse(self._model_json())

    async def health(self, request: Request) -> Response:
        stats = self.queue.stats()
        return JSONResponse({
            "status": "ok", "model": self.model.id,
            "queue_depth": stats.waiting + int(stats.running), "waiting": stats.waiting,
            "running": stats.running, "requests_completed": stats.completed,
            "requests_cancelled": stats.cancelled, "requests_dropped": stats.dropped,
            "tokens_generated": stats.tokens_generated,
        })

    def _model_json(self) -> dict[str, Any]:
        return {"id": self.model.id, "object": "model", "created": self.model.created,
                "owned_by": "ghostpen"}


def _generations(completion: CompletionRequest) -> tuple[Generation, ...]:
    """Prompt j's k-th run is run j * best_of + k."""
    return tuple(Generation(run=j * completion.best_of + k, prompt=prompt,
                            params=completion.run_params(k), max_tokens=completion.max_tokens)
                 for j, prompt in enumerate(completion.prompts) for k in range(completion.best_of))


class _UpdateChannel:
    """The job's updates, from the queue's thread into this event loop, in order."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[Update] = asyncio.Queue()

    def put(self, update: Update) -> None:  # called on the queue's thread
        with contextlib.suppress(RuntimeError):  # the loop has closed: the server stopped
            self._loop.call_soon_threadsafe(self._queue.put_nowait, update)

    async def __aiter__(self) -> AsyncIterator[Update]:
        while True:
            update = await self._queue.get()
            yield update
            if isinstance(update, JobEnded):
                return


class _CompletionStream:
    """One request's choices, built from the job's updates."""

    def __init__(self, completion: CompletionRequest, model: ServedModel,
                 updates: _UpdateChannel) -> None:
        self.completion = completion
        self.model = model
        self.updates = updates
        self.id = f"cmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.builders = [ChoiceBuilder(prompt, completion.echo, completion.logprobs)
                         for prompt in completion.prompts for _ in range(completion.best_of)]

    async def whole(self) -> dict[str, Any]:
        async for update in self.updates:
            if isinstance(update, JobEnded) and update.error is not None:
                raise ApiError(500, update.error, kind="server_error")
            self._take(update)
        return completion_json(self.id, self.created, self.model.id, self.model.fingerprint,
                               self._chosen(), self._usage())

    async def events(self, job: Job, watcher: asyncio.Task[None]) -> AsyncIterator[str]:
        """Server-sent events as OpenAI streams them: `data: {chunk}` per token, a chunk with
        each choice's finish_reason, the usage when asked, then `data: [DONE]`."""
        try:
            async for update in self.updates:
                if isinstance(update, JobEnded):
                    if update.error is not None:
                        yield _sse(error_body(update.error, kind="server_error"))
                        return
                    continue
                gained = self._take(update)
                if gained is not None:
                    yield _sse(self._chunk([gained]))
            if self.completion.include_usage:
                yield _sse(self._chunk([], self._usage()))
            yield "data: [DONE]\n\n"
        finally:
            job.cancel.set()  # the client left mid-stream (or the job is over: no effect)
            watcher.cancel()

    def _take(self, update: Update) -> dict[str, Any] | None:
        """Record one update; the streamed choice fragment it makes, if any."""
        if isinstance(update, JobEnded):
            return None
        builder = self.builders[update.run]
        if isinstance(update, Started):
            text, logprobs = builder.start(update.prompt_tokens, update.prompt_pieces)
            if not text and logprobs is None:
                return None
            return _fragment(update.run, text, logprobs, None)
        if isinstance(update, Token):
            text, logprobs = builder.add(update.event)
            return _fragment(update.run, text, logprobs, None)
        builder.finish(update.finish_reason, update.completion_tokens)
        return _fragment(update.run, "", None, update.finish_reason)

    def _chunk(self, choices: list[dict[str, Any]],
               usage: dict[str, int] | None = None) -> dict[str, Any]:
        body = completion_json(self.id, self.created, self.model.id, self.model.fingerprint,
                               choices, None)
        if self.completion.include_usage:  # then every chunk has "usage": null until the last
            body["usage"] = usage
        return body

    def _chosen(self) -> list[dict[str, Any]]:
        """n choices per prompt: all runs when best_of = n, else the n best, best first."""
        best_of, n = self.completion.best_of, self.completion.n
        choices = []
        for j in range(len(self.completion.prompts)):
            runs = self.builders[j * best_of : (j + 1) * best_of]
            if best_of > n:
                runs = sorted(runs, key=lambda run: run.mean_logprob, reverse=True)[:n]
            choices += [run.to_json(j * n + k) for k, run in enumerate(runs)]
        return choices

    def _usage(self) -> dict[str, int]:
        # The prompt counts once however many runs read it, as OpenAI counts it.
        best_of = self.completion.best_of
        prompt_tokens = sum(self.builders[j * best_of].prompt_tokens
                            for j in range(len(self.completion.prompts)))
        return usage_json(prompt_tokens, sum(b.completion_tokens for b in self.builders))


def _fragment(index: int, text: str, logprobs: dict[str, Any] | None,
              finish_reason: str | None) -> dict[str, Any]:
    return {"text": text, "index": index, "logprobs": logprobs, "finish_reason": finish_reason}


def _sse(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n"


async def _read_body(request: Request, limit: int) -> bytes:
    too_large = ApiError(413, f"The request body is larger than {limit // 1024} KiB; send a "
                              "shorter prompt (the model reads only its last 1,024 tokens).",
                         code="request_too_large")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def _cancel_on_disconnect(request: Request, job: Job) -> None:
    # The body has been read: what the server receives next is the client's disconnect (or,
    # once the response is sent, the end of this request).
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            job.cancel.set()
            return


async def _not_a_chat_model(request: Request) -> Response:
    raise ApiError(404, "GPT-2 is not a chat model: it continues text. Use POST "
                        "/v1/completions with the text to continue as the prompt.",
                   code="model_not_supported")


class _GateMiddleware:
    """Before any route: the Host header (when limited) and the API key (when set)."""

    def __init__(self, app: ASGIApp, api_key: str | None,
                 allowed_hosts: Collection[str] | None) -> None:
        self.app = app
        self.expected = f"Bearer {api_key}".encode() if api_key is not None else None
        self.allowed_hosts = allowed_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        refusal = None
        host = _host_name(headers.get(b"host", b"").decode("latin-1"))
        if self.allowed_hosts is not None and host not in self.allowed_hosts:
            refusal = ApiError(403, f"This server answers only requests to "
                                    f"{', '.join(sorted(self.allowed_hosts))}, not {host!r}.",
                               code="host_not_allowed")
        elif self.expected is not None:
            given = headers.get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                what = "A wrong API key" if given else "No API key"
                refusal = ApiError(401, f"{what}: this server was started with --api-key; "
                                        "send it as the header Authorization: Bearer KEY.",
                                   code="invalid_api_key")
        if refusal is not None:
            response = JSONResponse(refusal.body(), status_code=refusal.status,
                                    headers={"WWW-Authenticate": "Bearer"}
                                    if refusal.status == 401 else None)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _host_name(host: str) -> str:
    """The name in a Host header, without its port: "127.0.0.1:8089" -> "127.0.0.1",
    "[::1]:8089" -> "::1"."""
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


async def _api_error_response(request: Request, error: Exception) -> Response:
    assert isinstance(error, ApiError)
    return JSONResponse(error.body(), status_code=error.status)


async def _http_error_response(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    if error.status_code == 404:
        message = (f"Invalid URL ({request.method} {request.url.path}): Ghostpen serves POST "
                   "/v1/completions, GET /v1/models and GET /health.")
    elif error.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}."
    else:
        message = str(error.detail)
    return JSONResponse(error_body(message), status_code=error.status_code,
                        headers=error.headers)


async def _server_error_response(request: Request, error: Exception) -> Response:
    log.error("Request failed", exc_info=error)
    message = user_message(error, "The server failed", "details in its log")
    return JSONResponse(error_body(message, kind="server_error"), status_code=500)
