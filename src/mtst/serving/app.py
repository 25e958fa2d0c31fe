"""HTTP serving: ``create_app(predictor, settings)`` builds a FastAPI app whose handlers only validate,
queue into the micro-batcher and format. The model runs in the batcher's worker thread, never on the
event loop.

Endpoints: POST /v1/embeddings (OpenAI-compatible), /v1/embed, /v1/predict, /v1/similarity;
GET /v1/model, /health, /metrics, / (playground), /docs (OpenAPI).
Edge concerns (auth, request id, access log, request metrics, JSON encoding) live in ``mtst.serving.edge``.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Hashable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.exceptions import HTTPException

from mtst.errors import MtstError
from mtst.inference.batching import MicroBatcher, QueueFullError, ShuttingDownError, pass_size
from mtst.inference.truncation import embedding_limit, token_counts
from mtst.model.predictor import as_predictor
from mtst.serving.edge import EdgeMiddleware, Metrics, error_response, json_response

STATIC_DIR = Path(__file__).parent / "static"


@dataclass(frozen=True)
class ServeSettings:
    """Server limits and options. Sizes count sentences unless the name says otherwise."""

    max_sentences: int = 256  # per request -> 413 beyond
    max_chars: int = 10_000  # per sentence -> 413 beyond
    max_body_bytes: int = 8 * 1024 * 1024  # whole request body -> 413 beyond
    max_batch: int = 64  # most sentences per forward pass
    max_gather: int = 256  # most sentences the batcher takes per round (run as length-sorted forward passes)
    max_wait_ms: float = 5.0  # how long a batch waits to fill (only when callers are concurrent)
    max_queue: int = 1024  # sentences waiting -> 429 beyond
    timeout_s: float = 30.0  # per request, queueing included -> 504 beyond
    retry_after_s: int = 1  # Retry-After header on 429 / 503
    drain_timeout_s: float = 30.0  # on shutdown, how long queued work may take
    api_key: str | None = None  # bearer token; None = no auth
    cors_origins: tuple[str, ...] = ()  # no CORS unless given
    model_name: str = "mtst"

    def __post_init__(self) -> None:
        sizes = ("max_sentences", "max_chars", "max_body_bytes", "max_batch", "max_gather", "max_queue")
        bad = [name for name in sizes if getattr(self, name) < 1]
        bad += [name for name in ("max_wait_ms", "timeout_s", "drain_timeout_s") if getattr(self, name) < 0]
        if bad:
            raise MtstError(f"serve setting {bad[0]}={getattr(self, bad[0])} is out of range; use a positive value")


# ---- request bodies (strict: a number is not a sentence) ---------------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class EmbedRequest(_Strict):
    sentences: list[str] = Field(min_length=1)
    normalize: bool | None = None  # None: the model's own setting


class PredictRequest(_Strict):
    sentences: list[str] = Field(min_length=1)
    tasks: list[str] | None = None  # None: every task of the model


class SimilarityRequest(_Strict):
    sentences: list[str] = Field(min_length=1)


class EmbeddingsRequest(BaseModel):
    """The OpenAI embeddings request; unknown fields are ignored as OpenAI clients may add some."""

    model_config = ConfigDict(extra="ignore", strict=True)
    input: str | list[str]
    model: str = ""  # accepted and echoed back as this server's model name
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None
    user: str | None = None

    @field_validator("input", mode="before")
    @classmethod
    def _no_token_ids(cls, value: Any) -> Any:
        if isinstance(value, list) and value and all(isinstance(v, int | list) for v in value):
            raise ValueError("token-id arrays are not supported; send input as a string or a list of strings")
        return value


# ---- errors ----------------------------------------------------------------------------------
class ApiError(Exception):
    """An error with an HTTP status and one clear message (and optional headers)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


def _validation_details(exc: RequestValidationError) -> list[dict]:
    # Never echo the input back: it may be huge or undecodable bytes.
    return [{"loc": [str(part) for part in err.get("loc", ())], "msg": str(err.get("msg", "")),
             "type": str(err.get("type", ""))} for err in exc.errors()[:20]]


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        return error_response(exc.status, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        if errors and errors[0].get("type") == "json_invalid":
            reason = str((errors[0].get("ctx") or {}).get("error", "syntax error"))[:100]
            return error_response(400, f"the request body is not valid JSON ({reason}); send a JSON object")
        details = _validation_details(exc)
        first = details[0] if details else {"loc": [], "msg": "invalid request"}
        where = ".".join(first["loc"][1:]) or "body"
        return error_response(422, f"{where}: {first['msg']}", details=details)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        message = str(exc.detail)
        if exc.status_code == 400 and "parsing the body" in message:  # FastAPI's words for any unreadable body
            message = "the request body is not valid JSON (bad UTF-8, or nested too deeply); send a JSON object"
        return error_response(exc.status_code, message, dict(exc.headers or {}))

    @app.exception_handler(MtstError)
    async def user_error(request: Request, exc: MtstError) -> Response:
        return error_response(422, str(exc))


# ---- the model side ------------------------------------------------------------------------------
def make_run_batch(predictor, max_batch: int, metrics: Metrics | None = None):
    """The batcher's ``run_batch``: one predictor call per gathered batch, one result per sentence.

    The gathered sentences arrive in request order, so their lengths are mixed; one forward pass over
    them pads every sentence to the longest (STS-B: 1.5-1.8x the real tokens at 16-64 sentences).
    ``pass_size`` picks the pass size that, after the predictor sorts them by length, costs least.

    Keys: ``("embed", normalize)`` -> (vector float32 (H,), n_tokens, cut at the embedding limit);
    ``("predict", tasks)`` -> row dict.
    """

    def run(key: Hashable, sentences: list[str]) -> Sequence[Any]:
        op, option = key  # type: ignore[misc]
        counts, cut = token_counts(predictor, sentences, embedding=op == "embed")
        size = pass_size(counts, max_batch)
        if op == "embed":
            rows = list(zip(np.asarray(predictor.encode(sentences, batch_size=size, normalize=option),
                                       dtype=np.float32), counts, cut, strict=True))
        else:  # rows say "truncated": true where a sentence task or the embedding read a cut text
            rows = predictor.predict(sentences, tasks=list(option), batch_size=size)
            cut = [bool(row.get("truncated")) for row in rows]
        if metrics is not None:
            metrics.passes.inc(-(-len(sentences) // size))
            metrics.truncated.labels(op).inc(sum(cut))
        return rows

    return run


def describe(predictor, name: str) -> dict:
    """What GET /v1/model returns: enough for a client to know dimensions, tasks and labels."""
    config = predictor.config
    return {
        "id": name, "object": "model", "backend": predictor.backend,
        "backbone": config.encoder.backbone, "dimension": config.encoder.hidden_size,
        "pooling": config.encoder.pooling, "normalize": config.encoder.normalize,
        "max_seq_length": config.encoder.max_seq_length, "embedding_max_seq_length": embedding_limit(predictor),
        "trained": config.trained,
        "tasks": {task: {"type": head.type, "labels": head.labels} for task, head in config.heads.items()},
    }


# ---- the app ---------------------------------------------------------------------------------------
def create_app(predictor, settings: ServeSettings | None = None) -> FastAPI:
    """Build the app around a loaded predictor (mtst.inference.backends.load_predictor, any backend) or a
    MultiTaskModel (served on torch)."""
    predictor = as_predictor(predictor)
    settings = settings or ServeSettings()
    info = describe(predictor, settings.model_name)
    metrics = Metrics()
    batcher = MicroBatcher(make_run_batch(predictor, settings.max_batch, metrics), settings.max_gather,
                           settings.max_wait_ms, settings.max_queue, on_batch=metrics.observe_batch)
    metrics.track_queue(batcher)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if predictor.tasks:  # exported backends build the heads' graph on the first predict: not in a request
            await asyncio.to_thread(predictor.predict, ["warm up"])
        yield
        # uvicorn has stopped accepting and finished open requests; now let queued work drain.
        await asyncio.to_thread(batcher.close, settings.drain_timeout_s)

    app = FastAPI(title="mtst", version="0.1.0", lifespan=lifespan,
                  description="Multi-task sentence transformer: embeddings and task predictions from one forward pass.")
    app.state.batcher, app.state.metrics, app.state.settings = batcher, metrics, settings
    _install_error_handlers(app)
    app.add_middleware(EdgeMiddleware, metrics=metrics, api_key=settings.api_key,
                       max_body_bytes=settings.max_body_bytes)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])

    def check_limits(sentences: list[str]) -> None:
        if len(sentences) > settings.max_sentences:
            raise ApiError(413, f"{len(sentences)} sentences in one request; the limit is max_sentences="
                                f"{settings.max_sentences}, split the request")
        longest = max(len(text) for text in sentences)
        if longest > settings.max_chars:
            raise ApiError(413, f"a sentence has {longest} characters; the limit is max_chars={settings.max_chars}")

    async def run(key: Hashable, sentences: list[str]) -> list[Any]:
        check_limits(sentences)
        retry = {"Retry-After": str(settings.retry_after_s)}
        try:
            return await batcher.submit(key, sentences, timeout=settings.timeout_s)
        except QueueFullError as exc:
            raise ApiError(429, f"server busy: {exc}; retry after {settings.retry_after_s} s", retry) from exc
        except ShuttingDownError as exc:
            raise ApiError(503, str(exc), retry) from exc
        except TimeoutError as exc:
            raise ApiError(504, f"the model did not answer within timeout_s={settings.timeout_s} s") from exc

    @app.post("/v1/embeddings", summary="OpenAI-compatible embeddings")
    async def embeddings(body: EmbeddingsRequest) -> Response:
        if body.dimensions is not None and body.dimensions != info["dimension"]:
            raise ApiError(422, f"dimensions={body.dimensions} is not supported: this model's embeddings have "
                                f"{info['dimension']} dimensions; omit 'dimensions' or send {info['dimension']}")
        texts = [body.input] if isinstance(body.input, str) else body.input
        if not texts:
            raise ApiError(422, "input: must not be empty")
        rows = await run(("embed", info["normalize"]), texts)
        as_base64 = body.encoding_format == "base64"
        data = [{"object": "embedding", "index": i,
                 "embedding": base64.b64encode(vec.astype("<f4").tobytes()).decode() if as_base64 else vec,
                 **({"truncated": True} if cut else {})}  # the text was cut at the embedding limit
                for i, (vec, _, cut) in enumerate(rows)]
        tokens = sum(n for _, n, _ in rows)
        return json_response({"object": "list", "data": data, "model": settings.model_name,
                              "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    @app.post("/v1/embed", summary="Sentence embeddings")
    async def embed(body: EmbedRequest) -> Response:
        normalize = info["normalize"] if body.normalize is None else body.normalize  # one key per real setting
        rows = await run(("embed", normalize), body.sentences)
        cut = [index for index, (_, _, was_cut) in enumerate(rows) if was_cut]  # rows of a matrix hold no flag
        return json_response({"model": settings.model_name, "dimension": info["dimension"],
                              "embeddings": np.stack([vec for vec, _, _ in rows]),  # (N, H) float32
                              **({"truncated": cut} if cut else {})})

    @app.post("/v1/predict", summary="Every task's predictions (NER entities with character spans)")
    async def predict(body: PredictRequest) -> Response:
        tasks = predictor.check_tasks(body.tasks)  # an MtstError: 422 with its message
        rows = await run(("predict", tuple(tasks)), body.sentences) if tasks else [{"text": t} for t in body.sentences]
        return json_response({"model": settings.model_name, "predictions": rows})

    @app.post("/v1/similarity", summary="Cosine similarity matrix of the sentences")
    async def similarity(body: SimilarityRequest) -> Response:
        rows = await run(("embed", True), body.sentences)
        matrix = np.stack([vec for vec, _, _ in rows])  # (N, H), unit length
        cut = [index for index, (_, _, was_cut) in enumerate(rows) if was_cut]  # as /v1/embed: cut at its limit
        return json_response({"model": settings.model_name, "sentences": body.sentences,
                              "similarity": np.clip(matrix @ matrix.T, -1.0, 1.0).round(6),
                              **({"truncated": cut} if cut else {})})

    @app.get("/v1/model", summary="Backbone, dimension, tasks and labels")
    async def model_info() -> Response:
        return json_response(info)

    @app.get("/health", summary="Liveness (open without a token)")
    async def health() -> Response:
        return json_response({"status": "ok", "queue_depth": batcher.queue_depth})

    @app.get("/metrics", summary="Prometheus metrics")
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    async def playground() -> Response:
        return FileResponse(STATIC_DIR / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
