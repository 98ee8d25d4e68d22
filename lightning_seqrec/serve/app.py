"""The HTTP service (FastAPI): raw-ID recommendations for a history or a known user, events that update a user's
state, the model's description and health; every refusal is a 4xx with a one-line `detail` and changes nothing."""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import json
import logging
import socket
from collections.abc import Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from lightning_seqrec.errors import ConfigError, SeqRecError
from lightning_seqrec.serve.engine import UNKNOWN_POLICIES, Engine, MicroBatcher, Query, RequestError
from lightning_seqrec.serve.state import UserStateStore
from lightning_seqrec.version import __version__

log = logging.getLogger(__name__)
RawId = int | str


@dataclass
class Limits:
    """What one request may ask and how long it may take: body bytes, history items (also the events kept per user
    for seen-item masking), k, the user-state store's size, the per-request timeout and the largest scoring batch;
    `unknown` is the default policy for item IDs the model does not know ("reject" or "skip")."""

    max_body_bytes: int = 64 * 1024
    max_history: int = 200
    max_k: int = 1000
    max_user_id: int = 128
    max_users: int = 100_000
    timeout_s: float = 2.0
    max_batch: int = 64
    unknown: str = "reject"

    def __post_init__(self):
        if self.unknown not in UNKNOWN_POLICIES:
            raise ConfigError(f"unknown={self.unknown!r} is not one of {UNKNOWN_POLICIES}.")
        if (
            min(self.max_body_bytes, self.max_history, self.max_k, self.max_users, self.max_batch) < 1
            or self.timeout_s <= 0
        ):
            raise ConfigError(f"every serving limit must be positive; got {asdict(self)}.")


class Strict(BaseModel):
    """A request or answer body whose unknown fields are refused (a typo is a 422, not a silently ignored option)."""

    model_config = ConfigDict(extra="forbid")


class RecommendRequest(Strict):
    """`POST /recommend`: raw item IDs oldest first, their timestamps, k, seen-item masking, the unknown-ID policy."""

    history: list[RawId]
    timestamps: list[float] | None = None
    k: int = 10
    exclude_seen: bool = True
    unknown: str | None = None
    explain: bool = False


class Event(Strict):
    """`POST /users/{id}/events`: one interaction (raw item ID and, for a model that reads time, its timestamp)."""

    item_id: RawId
    timestamp: float | None = None


class EventAnswer(Strict):
    """The user, their event count after this one (None when it was skipped) and the raw IDs skipped."""

    user_id: str
    events: int | None
    skipped: list[RawId] = Field(default_factory=list)


class Service:
    """The state behind the routes: the engine, the user-state store, the batcher and the one worker thread that runs
    all model and store work."""

    def __init__(self, module, name: str, metrics: dict, index: str, index_kwargs: dict, limits: Limits, state_file):
        self.limits, self.name, self.metrics = limits, name, dict(metrics or {})
        self.engine = Engine(module, kind=index, **(index_kwargs or {}))
        self.store = UserStateStore(
            module, max_users=limits.max_users, max_history=max(limits.max_history, module.max_len)
        )
        self.worker = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="seqrec-serve")
        self.batcher = MicroBatcher(self.engine, self.worker, limits.max_batch)
        self.state_file = None if state_file is None else Path(state_file)

    @property
    def module(self):
        return self.engine.module

    def check_k(self, k: int) -> int:
        """`k` within 1..`limits.max_k`, else a 422."""
        if not 1 <= k <= self.limits.max_k:
            raise RequestError(422, f"k={k} is out of range; pass 1 <= k <= {self.limits.max_k}")
        return k

    def policy(self, unknown: str | None) -> str:
        """The unknown-ID policy of a request: its own, or the server's default."""
        unknown = unknown or self.limits.unknown
        if unknown not in UNKNOWN_POLICIES:
            raise RequestError(422, f"unknown={unknown!r} is not one of {list(UNKNOWN_POLICIES)}")
        return unknown

    def history_query(self, body: RecommendRequest) -> tuple[Query, list]:
        """The query of a whole-history request, refusing an empty, oversized, untimed (for a model reading time) or
        (policy "reject") unknown-item history; also the raw IDs skipped."""
        history, limit = body.history, self.limits.max_history
        if not history:
            raise RequestError(422, "history is empty; send at least one raw item ID, oldest first")
        if len(history) > limit:
            raise RequestError(413, f"history has {len(history)} items; this server takes at most {limit}")
        if body.timestamps is not None and len(body.timestamps) != len(history):
            raise RequestError(
                422, f"{len(body.timestamps)} timestamps for {len(history)} items; send one per item, or none"
            )
        if body.timestamps is None and self.module.uses_time:
            raise RequestError(422, "this model reads time: send timestamps, one per item of history")
        items, skipped, known = self.engine.indices(history, self.policy(body.unknown))
        if len(items) == 0:
            raise RequestError(422, f"no item of history is in the model's vocabulary (skipped {skipped[:5]!r})")
        times = None if body.timestamps is None else np.asarray(body.timestamps, np.float64)[known]
        k = self.check_k(body.k)
        return Query(items, times, k, items if body.exclude_seen else None), skipped

    def check_user(self, user_id: str) -> str:
        """A user ID of 1 to `limits.max_user_id` characters, else a 422."""
        if not user_id or len(user_id) > self.limits.max_user_id:
            raise RequestError(422, f"user IDs are 1 to {self.limits.max_user_id} characters")
        return user_id

    def user_query(self, user_id: str, k: int, exclude_seen: bool) -> Query:
        """The query of a known user's state (run on the worker, which owns the store)."""
        state = self.store.get(user_id)
        if state is None:
            raise RequestError(404, f"user {user_id!r} has no events (or was evicted); POST /users/{{id}}/events first")
        items = np.fromiter(state.items, np.int64)
        exclude = items if exclude_seen else None
        if state.hidden is not None:
            return Query(None, None, k, exclude, hidden=state.hidden.numpy())
        times = None if state.times is None else np.fromiter(state.times, np.float64)
        return Query(items, times, k, exclude)

    async def in_worker(self, fn, *args):
        """`fn(*args)` on the worker thread within the request timeout; a call that has not started by then is
        cancelled (504, nothing changed), one already running is waited for."""
        future = self.worker.submit(fn, *args)
        try:
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), self.limits.timeout_s)
        except TimeoutError:
            if future.cancel():
                raise RequestError(
                    504, f"the request took over {self.limits.timeout_s} s; nothing was changed"
                ) from None
            return await asyncio.wrap_future(future)

    async def answer(self, query: Query) -> list[dict]:
        """The top-k of `query` through the batcher, within the request timeout (504 past it)."""
        try:
            return await asyncio.wait_for(self.batcher.submit(query), self.limits.timeout_s)
        except TimeoutError:
            raise RequestError(504, f"the request took over {self.limits.timeout_s} s") from None

    def describe(self) -> dict:
        """`GET /model`: what is served, its card's metrics, the library version and the limits."""
        module = self.module
        return {
            "name": self.name,
            "backbone": module.architecture["backbone"],
            "num_items": module.num_items,
            "embedding_dim": module.item_embedding.embedding_dim,
            "max_len": module.max_len,
            "scoring": module.scoring,
            "num_interests": module.num_interests,
            "uses_time": module.uses_time,
            "recurrent_state": self.store.recurrent,
            "index": self.engine.kind,
            "metrics": self.metrics,
            "version": __version__,
            "limits": asdict(self.limits),
        }


class BodyLimit:
    """ASGI middleware refusing a request body over `limit` bytes with 413, by its Content-Length or, for a chunked
    body, as soon as the bytes read pass the limit (before the route sees any of it)."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return await self._refuse(send)
        body = b""
        more = True
        while more:  # read the whole (bounded) body first, so a refusal never follows a started response
            message = await receive()
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.limit:
                return await self._refuse(send)
        sent = False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        return await self.app(scope, replay, send)

    async def _refuse(self, send):
        payload = json.dumps({"detail": f"the request body is over {self.limit} bytes"}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


def one_line(err: RequestValidationError) -> tuple[int, str]:
    """The status and one-line reason of a body FastAPI could not parse: 400 for malformed JSON, 422 otherwise."""
    first = err.errors()[0] if err.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
    if first.get("type") == "json_invalid":
        return 400, f"the body is not valid JSON ({first.get('ctx', {}).get('error', 'parse error')})"
    return 422, f"{where}: {first.get('msg', 'invalid value')}"


def create_app(
    module,
    *,
    name: str = "",
    metrics: dict | None = None,
    index: str = "flat",
    index_kwargs: dict | None = None,
    limits: Limits | None = None,
    state_file: str | Path | None = None,
) -> FastAPI:
    """The FastAPI app serving `module` (loaded by the library's loaders); `state_file`, when given, is read here
    (if it exists) and written at shutdown, so users' states survive a restart."""
    service = Service(module, name, metrics, index, index_kwargs, limits or Limits(), state_file)
    if service.state_file is not None and service.state_file.exists():  # before serving: a bad file is one line
        loaded = service.store.load(service.state_file)
        log.info("loaded %d user states from %s", loaded, service.state_file)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        if service.state_file is not None:
            await asyncio.wrap_future(service.worker.submit(service.store.save, service.state_file))
        service.worker.shutdown(wait=True)

    app = FastAPI(title="lightning-seqrec", version=__version__, lifespan=lifespan)
    app.state.service = service

    @app.exception_handler(RequestError)
    async def refused(request: Request, err: RequestError):
        return JSONResponse({"detail": err.reason}, status_code=err.status)

    @app.exception_handler(RequestValidationError)
    async def unparsed(request: Request, err: RequestValidationError):
        status, reason = one_line(err)
        return JSONResponse({"detail": reason}, status_code=status)

    @app.exception_handler(SeqRecError)
    async def library_error(request: Request, err: SeqRecError):
        return JSONResponse({"detail": " ".join(str(err).split())}, status_code=422)

    @app.get("/health")
    async def health():
        return {"status": "ok", "users": len(service.store), "batches": service.batcher.batches}

    @app.get("/model")
    async def model():
        return service.describe()

    @app.post("/recommend")
    async def recommend(body: RecommendRequest):
        query, skipped = service.history_query(body)
        if body.explain:
            return {"items": await service.in_worker(explained, service, body), "skipped": skipped}
        return {"items": await service.answer(query), "skipped": skipped}

    @app.post("/users/{user_id}/events")
    async def add_event(user_id: str, body: Event) -> EventAnswer:
        user_id = service.check_user(user_id)
        if body.timestamp is None and service.module.uses_time:
            raise RequestError(422, "this model reads time: send the event's timestamp")
        items, skipped, _ = service.engine.indices([body.item_id], service.policy(None))
        if len(items) == 0:
            return EventAnswer(user_id=user_id, events=None, skipped=skipped)  # unknown, skipped: nothing changed
        state = await service.in_worker(service.store.append, user_id, int(items[0]), body.timestamp)
        return EventAnswer(user_id=user_id, events=state.events)

    @app.get("/users/{user_id}/recommend")
    async def user_recommend(user_id: str, k: int = 10, exclude_seen: bool = True):
        query = await service.in_worker(
            service.user_query, service.check_user(user_id), service.check_k(k), exclude_seen
        )
        return {"items": await service.answer(query), "user_id": user_id}

    app.add_middleware(BodyLimit, limit=service.limits.max_body_bytes)
    return app


def explained(service: Service, body: RecommendRequest) -> list[dict]:
    """Top-k with explanations, through `module.recommend(explain=True)` (the explainer attached to the module)."""
    module = service.module
    if getattr(module, "explainer", None) is None:
        raise RequestError(422, "this model serves no explanations (no explainer is attached to it)")
    unknown = "drop" if service.policy(body.unknown) == "skip" else "raise"
    times = None if body.timestamps is None else [body.timestamps]
    return module.recommend(
        [body.history], k=body.k, exclude_seen=body.exclude_seen, unknown=unknown, timestamps=times, explain=True
    )[0]


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on `host:port` (port 0: a free one), so the caller knows the address before serving."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)  # connections wait in the backlog from now on, not refused while uvicorn starts
    except OSError as err:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port} ({err.strerror}); pass another port=") from err
    return sock


def set_threads(threads: int) -> None:
    """The threads torch and FAISS may use in this process. One worker scoring batches does best with 1: more
    threads per small batch cost more in hand-offs than they gain (12x slower per query on a busy 2-core machine)."""
    import faiss
    import torch

    if threads < 1:
        raise ConfigError(f"threads={threads} must be >= 1.")
    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(threads)


def run_server(app: FastAPI, sockets: Sequence[socket.socket], log_level: str = "warning"):
    """Serve `app` with uvicorn on already-bound `sockets` until SIGINT / SIGTERM (then the lifespan saves state)."""
    import uvicorn

    gc.collect()
    gc.freeze()  # the model, configs and imports live as long as the server: collections need not walk them
    server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, access_log=False))
    server.run(sockets=list(sockets))
    return server
