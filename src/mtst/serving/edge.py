"""The HTTP edge of ``mtst serve``: JSON responses, Prometheus metrics and one pure-ASGI middleware.

Everything here runs once per request on the event loop, so it is written for cost: responses are
serialised by orjson (numpy arrays directly, float32 in its shortest exact form) instead of
``json.dumps`` over ``tolist()`` - 384 floats took ~0.1-0.4 ms per one-sentence request that way,
a third of the event loop's time under load. The middleware is pure ASGI (Starlette's
BaseHTTPMiddleware costs a task and a stream per request). The batcher's cheap look at each sentence's length
(pass sizes, the ``mtst_truncated_texts`` counter) is mtst.inference.truncation's ``token_counts``.
"""

from __future__ import annotations

import hmac
import itertools
import json
import logging
import time
import uuid
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.responses import Response

access_log = logging.getLogger("mtst.access")
OPEN_PATHS = ("/health", "/", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/favicon.ico")
ROUTES = ("/v1/embeddings", "/v1/embed", "/v1/predict", "/v1/similarity", "/v1/model", "/health", "/metrics", "/")
_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY  # numpy arrays and scalars serialise without tolist()


class JSONBytes(Response):
    """A JSON response whose body is already bytes (Starlette's JSONResponse would re-encode it)."""

    media_type = "application/json"


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """``data`` (dicts, lists, str, numbers, numpy arrays) as a compact JSON response."""
    return JSONBytes(orjson.dumps(data, option=_JSON_OPTIONS), status_code=status, headers=headers)


def error_response(status: int, message: str, headers: dict[str, str] | None = None,
                   details: list | None = None) -> Response:
    """The OpenAI-shaped error body ``{"error": {"message", "type", "code"}}`` that OpenAI clients parse."""
    kind = "invalid_request_error" if status < 500 else "server_error"
    error: dict[str, Any] = {"message": message, "type": kind, "code": status}
    if details:
        error["details"] = details
    return json_response({"error": error}, status, headers)


class Metrics:
    """Prometheus metrics on a per-app registry, so tests can build many apps in one process."""

    def __init__(self):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("mtst_requests", "HTTP requests", ["path", "status"], registry=r)
        self.errors = Counter("mtst_errors", "HTTP responses with status >= 400", ["path", "status"], registry=r)
        self.latency = Histogram("mtst_request_seconds", "request latency", ["path"], registry=r,
                                 buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10))
        self.batch_size = Histogram("mtst_batch_size", "sentences per gathered batch", registry=r,
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512))
        self.batch_seconds = Histogram("mtst_batch_seconds", "model time per gathered batch", registry=r,
                                       buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 5))
        self.passes = Counter("mtst_forward_passes", "model forward passes (a batch runs as one or more)",
                              registry=r)
        self.truncated = Counter("mtst_truncated_texts", "sentences an embedding or a sentence task read cut at "
                                 "the token limit", ["op"], registry=r)  # op: embed | predict
        self.in_flight = Gauge("mtst_requests_in_flight", "requests being handled", registry=r)
        self.queue_depth = Gauge("mtst_queue_depth", "sentences waiting for the model", registry=r)
        self._by_label: dict[tuple[str, int], tuple] = {}  # (path, status) -> bound metric children

    def track_queue(self, batcher) -> None:
        self.queue_depth.set_function(lambda: batcher.queue_depth)

    def observe_batch(self, n_sentences: int, n_jobs: int, seconds: float) -> None:
        self.batch_size.observe(n_sentences)
        self.batch_seconds.observe(seconds)

    def observe_request(self, label: str, status: int, seconds: float) -> None:
        # .labels() takes a lock and builds a key per call; the children are cached per (path, status).
        children = self._by_label.get((label, status))
        if children is None:
            code = str(status)
            children = (self.requests.labels(label, code), self.latency.labels(label),
                        self.errors.labels(label, code) if status >= 400 else None)
            self._by_label[(label, status)] = children
        requests, latency, errors = children
        requests.inc()
        latency.observe(seconds)
        if errors is not None:
            errors.inc()


class EdgeMiddleware:
    """Auth, request id, one JSON access-log line and request metrics for every HTTP request."""

    def __init__(self, app, metrics: Metrics, api_key: str | None, max_body_bytes: int):
        self.app, self.metrics, self.api_key, self.max_body_bytes = app, metrics, api_key, max_body_bytes
        # A random prefix per app + a counter: unique ids without an os.urandom call per request (uuid4
        # cost ~0.2 ms per call on the busy benchmark machine).
        self.id_prefix, self.ids = uuid.uuid4().hex[:12], itertools.count(1)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        headers = dict(scope.get("headers") or [])
        request_id = headers.get(b"x-request-id", b"").decode("latin-1")[:64] or f"{self.id_prefix}-{next(self.ids)}"
        path = scope.get("path", "")
        label = path if path in ROUTES else ("/static" if path.startswith("/static/") else "other")
        status = 500

        async def send_with_id(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id.encode("latin-1"))]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            refusal = self._refusal(scope, path, headers)
            if refusal is None and scope.get("method") == "POST":
                receive, refusal = await self._buffer_body(receive)
            if refusal is None:
                await self.app(scope, receive, send_with_id)
            else:
                await refusal(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - start
            self.metrics.in_flight.dec()
            self.metrics.observe_request(label, status, seconds)
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(json.dumps({
                    "ts": round(time.time(), 3), "id": request_id, "method": scope.get("method"), "path": path[:200],
                    "status": status, "ms": round(seconds * 1000, 2),
                    "client": (scope.get("client") or ("", 0))[0],
                }))

    def _refusal(self, scope, path: str, headers: dict[bytes, bytes]) -> Response | None:
        """A response that ends the request before the app sees it: 401, 413 or 415; else None."""
        if not self._authorized(path, headers):
            return error_response(401, "missing or wrong bearer token; send 'Authorization: Bearer <MTST_API_KEY>'",
                                  {"WWW-Authenticate": "Bearer"})
        if scope.get("method") != "POST":
            return None
        length = headers.get(b"content-length", b"0")
        if length.isdigit() and int(length) > self.max_body_bytes:
            limit = self.max_body_bytes
            return error_response(413, f"request body has {int(length)} bytes; the limit is max_body_bytes={limit}")
        kind = headers.get(b"content-type", b"application/json").split(b";")[0].strip().lower()
        if kind != b"application/json" and not kind.endswith(b"+json"):
            return error_response(415, f"content type '{kind.decode('latin-1')[:50]}' is not supported; "
                                       "send 'Content-Type: application/json'")
        return None

    async def _buffer_body(self, receive):
        """Read the whole body (bounded by max_body_bytes, chunked uploads too), then replay it to the app."""
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return receive, error_response(400, "the client disconnected before sending the whole body")
            chunks.append(message.get("body", b""))
            total += len(chunks[-1])
            if total > self.max_body_bytes:
                return receive, error_response(413, f"request body exceeds max_body_bytes={self.max_body_bytes}")
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        return replay, None

    def _authorized(self, path: str, headers: dict[bytes, bytes]) -> bool:
        if self.api_key is None or path in OPEN_PATHS or path.startswith("/static/"):
            return True
        scheme, _, token = headers.get(b"authorization", b"").partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.api_key.encode())

