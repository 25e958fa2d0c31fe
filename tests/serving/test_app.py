"""The HTTP app: every endpoint, every limit and error path, auth, metrics, batching under concurrency,
drain, and the real ``openai`` client against a live server."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import threading
import time

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from helpers import live_server
from mtst.errors import MtstError
from mtst.model.predictor import as_predictor
from mtst.serving.app import ServeSettings, create_app, make_run_batch
from mtst.serving.edge import Metrics

SENTENCES = ["john smith lives in paris", "the cat sat on the mat", "google rose today"]


class Held:
    """A predictor stand-in whose encode blocks until ``release`` is set (for 429 / 504 / drain)."""

    backend = "torch"

    def __init__(self, model):
        self.model, self.config, self.tasks = model, model.config, model.tasks
        self.tokenizer = model.tokenizer
        self.check_tasks = as_predictor(model).check_tasks
        self.release, self.entered = threading.Event(), threading.Event()

    def encode(self, sentences, **options):
        self.entered.set()
        self.release.wait(10)
        return self.model.encode(sentences, **options)

    def predict(self, sentences, **options):
        return self.model.predict(sentences, **options)


def run_async(app, requests):
    """Send (method, path, json) requests concurrently through the ASGI app; return the responses."""

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await asyncio.gather(*(client.request(m, p, json=body) for m, p, body in requests))

    return asyncio.run(main())


@pytest.fixture
def client(tiny_model):
    with TestClient(create_app(tiny_model, ServeSettings(max_sentences=8, max_chars=200, max_body_bytes=20_000,
                                                         model_name="tiny"))) as test_client:
        yield test_client


# ---- endpoints ---------------------------------------------------------------------------------
@pytest.mark.parametrize("normalize", [None, False])
def test_embed_matches_the_model(client, tiny_model, normalize):
    response = client.post("/v1/embed", json={"sentences": SENTENCES, "normalize": normalize})
    assert response.status_code == 200
    body = response.json()
    expected = tiny_model.encode(SENTENCES, normalize=normalize)
    assert body["dimension"] == 32 and body["model"] == "tiny"
    np.testing.assert_allclose(np.array(body["embeddings"]), expected, atol=1e-5)
    norms = np.linalg.norm(np.array(body["embeddings"]), axis=1)
    assert np.allclose(norms, 1.0, atol=1e-4) == (normalize is None)


def test_predict_matches_the_model_with_char_spans(client, tiny_model):
    response = client.post("/v1/predict", json={"sentences": SENTENCES, "tasks": ["topic", "ner"]})
    assert response.status_code == 200
    got = response.json()["predictions"]
    expected = tiny_model.predict(SENTENCES)
    assert [row["topic"]["label"] for row in got] == [row["topic"]["label"] for row in expected]
    assert [[(e["start"], e["end"], e["label"]) for e in row["ner"]] for row in got] == \
        [[(e["start"], e["end"], e["label"]) for e in row["ner"]] for row in expected]
    for row in got:
        for entity in row["ner"]:
            assert row["text"][entity["start"]:entity["end"]] == entity["text"]
    only_topic = client.post("/v1/predict", json={"sentences": SENTENCES[:1], "tasks": ["topic"]}).json()
    assert set(only_topic["predictions"][0]) == {"text", "topic"}


def test_similarity_is_the_cosine_matrix(client, tiny_model):
    response = client.post("/v1/similarity", json={"sentences": SENTENCES})
    matrix = np.array(response.json()["similarity"])
    vectors = tiny_model.encode(SENTENCES, normalize=True)
    assert matrix.shape == (3, 3)
    np.testing.assert_allclose(matrix, vectors @ vectors.T, atol=1e-5)


def test_model_info_health_docs_and_playground(client):
    info = client.get("/v1/model").json()
    assert info["dimension"] == 32 and info["backend"] == "torch"
    assert info["tasks"]["ner"]["type"] == "token_classification"
    assert info["tasks"]["topic"]["labels"] == ["world", "sports", "business"]
    assert client.get("/health").json()["status"] == "ok"
    assert "/v1/embeddings" in client.get("/openapi.json").json()["paths"]
    assert client.get("/docs").status_code == 200
    page = client.get("/")
    assert page.status_code == 200 and 'id="sentences"' in page.text
    assert client.get("/static/app.js").status_code == 200
    assert "cdn" not in page.text.lower() and "https://" not in page.text


# ---- the OpenAI-compatible endpoint -------------------------------------------------------------
def test_openai_embeddings_float_and_base64(client, tiny_model):
    floats = client.post("/v1/embeddings", json={"input": SENTENCES, "model": "anything"}).json()
    assert floats["object"] == "list" and floats["model"] == "tiny"
    assert [item["index"] for item in floats["data"]] == [0, 1, 2]
    assert all(item["object"] == "embedding" for item in floats["data"])
    tokens = sum(len(item.input_ids) for item in tiny_model.tokenizer(SENTENCES))
    assert floats["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}
    packed = client.post("/v1/embeddings", json={"input": SENTENCES[0], "encoding_format": "base64"}).json()
    decoded = np.frombuffer(base64.b64decode(packed["data"][0]["embedding"]), dtype="<f4")
    np.testing.assert_allclose(decoded, np.array(floats["data"][0]["embedding"]), atol=1e-6)


@pytest.mark.parametrize(("payload", "fragment"), [
    ({"input": [[1, 2, 3]]}, "token-id arrays are not supported"),
    ({"input": [1, 2, 3]}, "token-id arrays are not supported"),
    ({"input": "x", "dimensions": 8}, "dimensions=8 is not supported"),
    ({"input": []}, "must not be empty"),
    ({"input": "x", "encoding_format": "int8"}, "encoding_format"),
])
def test_openai_embeddings_rejects(client, payload, fragment):
    response = client.post("/v1/embeddings", json=payload)
    assert response.status_code == 422
    assert fragment in response.json()["error"]["message"]


def test_openai_embeddings_accepts_matching_dimensions(client):
    response = client.post("/v1/embeddings", json={"input": "x", "dimensions": 32})
    assert response.status_code == 200 and len(response.json()["data"][0]["embedding"]) == 32


def test_real_openai_client_against_a_live_server(tiny_model):
    openai = pytest.importorskip("openai")
    app = create_app(tiny_model, ServeSettings(api_key="s3cret", model_name="tiny"))
    with live_server(app) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="s3cret", max_retries=0)
        packed = client.embeddings.create(input=SENTENCES, model="tiny")  # the client asks for base64 itself
        floats = client.embeddings.create(input=SENTENCES[0], model="tiny", encoding_format="float")
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0).embeddings.create(
                input="x", model="tiny")
        with pytest.raises(openai.UnprocessableEntityError):
            client.embeddings.create(input="x", model="tiny", dimensions=7)
    expected = tiny_model.encode(SENTENCES)
    np.testing.assert_allclose(np.array([item.embedding for item in packed.data]), expected, atol=1e-5)
    np.testing.assert_allclose(np.array(floats.data[0].embedding), expected[0], atol=1e-5)
    assert packed.model == "tiny" and packed.usage.prompt_tokens > 0


def test_langchain_openai_embeddings_against_a_live_server(tiny_model):
    """The docs/serving.md snippet: LangChain's OpenAIEmbeddings with client-side token splitting off."""
    langchain_openai = pytest.importorskip("langchain_openai")
    with live_server(create_app(tiny_model, ServeSettings(model_name="tiny"))) as url:
        embeddings = langchain_openai.OpenAIEmbeddings(model="mtst", base_url=f"{url}/v1", api_key="unused",
                                                       check_embedding_ctx_length=False, max_retries=0)
        documents = embeddings.embed_documents(SENTENCES)
        query = embeddings.embed_query(SENTENCES[1])
    expected = tiny_model.encode(SENTENCES)
    np.testing.assert_allclose(np.array(documents), expected, atol=1e-5)
    np.testing.assert_allclose(np.array(query), expected[1], atol=1e-5)


# ---- limits and error paths --------------------------------------------------------------------
@pytest.mark.parametrize(("payload", "status", "fragment"), [
    ({"sentences": ["a"] * 9}, 413, "max_sentences=8"),
    ({"sentences": ["a" * 201]}, 413, "max_chars=200"),
    ({"sentences": ["a"], "tasks": ["nope"]}, 422, "unknown task 'nope'"),
    ({"sentences": [3]}, 422, "sentences.0"),
    ({"sentences": "not a list"}, 422, "sentences"),
    ({"sentences": []}, 422, "sentences"),
    ({"sentences": ["a"], "extra": 1}, 422, "extra"),
    ({}, 422, "sentences"),
])
def test_predict_limits_and_validation(client, payload, status, fragment):
    response = client.post("/v1/predict", json=payload)
    assert response.status_code == status
    assert fragment in response.json()["error"]["message"]


@pytest.mark.parametrize(("content", "content_type", "status", "fragment"), [
    (b'{"sentences": [', "application/json", 400, "not valid JSON"),
    (b'{"sentences": ["\xff\xfe"]}', "application/json", 400, "not valid JSON"),
    (b"[" * 50_000 + b"]" * 50_000, "application/json", 413, "max_body_bytes=20000"),
    (b"[" * 9_000 + b"]" * 9_000, "application/json", 400, "nested too deeply"),
    (b"sentences=a", "application/x-www-form-urlencoded", 415, "application/json"),
])
def test_malformed_bodies_are_4xx(client, content, content_type, status, fragment):
    response = client.post("/v1/embed", content=content, headers={"content-type": content_type})
    assert response.status_code == status
    assert fragment in response.json()["error"]["message"]


def test_chunked_body_over_the_limit_is_413(client):
    response = client.post("/v1/embed", content=iter([b'{"sentences": ["', b"a" * 25_000, b'"]}']),
                           headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_unknown_path_and_method(client):
    assert client.get("/v2/nothing").status_code == 404
    assert client.get("/v1/embed").status_code == 405


def test_queue_full_is_429_with_retry_after(tiny_model):
    held = Held(tiny_model)
    app = create_app(held, ServeSettings(max_batch=1, max_wait_ms=0, max_queue=1, retry_after_s=3))

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            first = asyncio.ensure_future(http.post("/v1/embed", json={"sentences": ["a"]}))
            await asyncio.to_thread(held.entered.wait, 5)  # the worker is busy with "a"
            second = asyncio.ensure_future(http.post("/v1/embed", json={"sentences": ["b"]}))
            while app.state.batcher.queue_depth < 1:  # wait until "b" fills the queue
                await asyncio.sleep(0.01)
            third = await http.post("/v1/embed", json={"sentences": ["c"]})
            held.release.set()
            return await first, await second, third

    first, second, third = asyncio.run(main())
    app.state.batcher.close()
    assert (first.status_code, second.status_code, third.status_code) == (200, 200, 429)
    assert third.headers["retry-after"] == "3"
    assert "queue full" in third.json()["error"]["message"]


def test_timeout_is_504(tiny_model):
    held = Held(tiny_model)
    app = create_app(held, ServeSettings(timeout_s=0.1))
    response = run_async(app, [("POST", "/v1/embed", {"sentences": ["a"]})])[0]
    held.release.set()
    app.state.batcher.close()
    assert response.status_code == 504 and "timeout_s=0.1" in response.json()["error"]["message"]


# ---- auth, CORS, logging, metrics --------------------------------------------------------------
def test_bearer_auth(tiny_model):
    with TestClient(create_app(tiny_model, ServeSettings(api_key="k3y"))) as http:
        body = {"sentences": ["a"]}
        assert http.post("/v1/embed", json=body).status_code == 401
        wrong = http.post("/v1/embed", json=body, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
        assert http.post("/v1/embed", json=body, headers={"Authorization": "Bearer k3y"}).status_code == 200
        assert http.get("/metrics").status_code == 401
        assert http.get("/health").status_code == 200  # open for load balancers
        assert http.get("/").status_code == 200  # the page is open; its API calls need the key


def test_cors_only_when_asked(tiny_model):
    origin = {"Origin": "http://example.test"}
    with TestClient(create_app(tiny_model)) as http:
        assert "access-control-allow-origin" not in http.get("/health", headers=origin).headers
    with TestClient(create_app(tiny_model, ServeSettings(cors_origins=("http://example.test",)))) as http:
        assert http.get("/health", headers=origin).headers["access-control-allow-origin"] == "http://example.test"


def test_one_json_access_log_line_per_request(client, caplog):
    with caplog.at_level(logging.INFO, logger="mtst.access"):
        client.post("/v1/embed", json={"sentences": ["a"]}, headers={"X-Request-ID": "abc"})
        client.post("/v1/embed", json={"sentences": [1]})
    lines = [json.loads(record.getMessage()) for record in caplog.records if record.name == "mtst.access"]
    assert [(line["path"], line["status"]) for line in lines] == [("/v1/embed", 200), ("/v1/embed", 422)]
    assert lines[0]["id"] == "abc" and lines[0]["ms"] >= 0


def test_metrics_content(client):
    client.post("/v1/embed", json={"sentences": ["a", "b"]})
    client.post("/v1/embed", json={"sentences": [1]})
    text = client.get("/metrics").text
    assert 'mtst_requests_total{path="/v1/embed",status="200"} 1.0' in text
    assert 'mtst_errors_total{path="/v1/embed",status="422"} 1.0' in text
    assert "mtst_batch_size_count 1.0" in text and "mtst_batch_size_sum 2.0" in text
    assert "mtst_queue_depth 0.0" in text
    assert 'mtst_request_seconds_bucket{le="+Inf",path="/v1/embed"} 2.0' in text


# ---- the real batcher under concurrency ----------------------------------------------------------
def test_concurrent_requests_get_their_own_results_and_are_batched(tiny_model):
    app = create_app(tiny_model, ServeSettings(max_batch=16, max_wait_ms=20))
    words = ["john", "paris", "cat", "dog", "market", "stock", "team", "game", "guitar", "movie"]
    sentences = [f"{a} {b} {i}" for i, (a, b) in enumerate(zip(words * 4, reversed(words * 4), strict=True))]
    requests = [("POST", "/v1/embed", {"sentences": [text]}) for text in sentences]
    requests += [("POST", "/v1/predict", {"sentences": [text]}) for text in sentences[:10]]
    responses = run_async(app, requests)
    app.state.batcher.close()
    assert all(response.status_code == 200 for response in responses)
    got = np.array([response.json()["embeddings"][0] for response in responses[:40]])
    np.testing.assert_allclose(got, tiny_model.encode(sentences), atol=1e-5)
    expected = tiny_model.predict(sentences[:10])
    for response, row in zip(responses[40:], expected, strict=True):
        assert response.json()["predictions"][0]["topic"]["label"] == row["topic"]["label"]
        assert response.json()["predictions"][0]["text"] == row["text"]
    batch_count = app.state.metrics.registry.get_sample_value("mtst_batch_size_count")
    assert batch_count < 50  # fewer forward passes than requests: they were batched
    assert app.state.metrics.registry.get_sample_value("mtst_batch_size_sum") == 50


def test_a_mixed_length_batch_runs_as_sorted_passes_and_keeps_request_order(tiny_model):
    class Recording(Held):
        def encode(self, sentences, **options):
            self.batch_sizes.append(options["batch_size"])
            return self.model.encode(sentences, **options)

    recording = Recording(tiny_model)
    recording.batch_sizes = []
    metrics = Metrics()
    run = make_run_batch(recording, max_batch=64, metrics=metrics)
    long = " ".join(["paris market guitar"] * 12)  # ~38 tokens against ~3 for the short ones
    sentences = [f"cat {i}" if i % 8 else f"{long} {i}" for i in range(64)]
    rows = run(("embed", True), sentences)
    # 8 long + 56 short: several passes (8 or 16 each), not one pass padding 56 short ones to the longest
    assert recording.batch_sizes in ([8], [16])
    assert metrics.registry.get_sample_value("mtst_forward_passes_total") == 64 // recording.batch_sizes[0]
    np.testing.assert_allclose(np.stack([vec for vec, *_ in rows]), tiny_model.encode(sentences), atol=1e-5)
    assert [n for _, n, _ in rows] == [len(item.input_ids) for item in tiny_model.tokenizer(sentences)]


def test_shutdown_drains_in_flight_requests(tiny_model):
    held = Held(tiny_model)
    app = create_app(held, ServeSettings(max_batch=2, max_wait_ms=0))

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            pending = [asyncio.ensure_future(http.post("/v1/embed", json={"sentences": [f"s {i}"]})) for i in range(6)]
            await asyncio.to_thread(held.entered.wait, 5)
            closing = asyncio.ensure_future(asyncio.to_thread(app.state.batcher.close, 10))
            while not app.state.batcher.closing:
                await asyncio.sleep(0.01)
            refused = await http.post("/v1/embed", json={"sentences": ["new"]})
            held.release.set()
            return await asyncio.gather(*pending), refused, await closing

    done, refused, drained = asyncio.run(main())
    assert [response.status_code for response in done] == [200] * 6
    assert refused.status_code == 503 and "retry-after" in refused.headers
    assert drained is True


def test_live_server_shutdown_finishes_in_flight_requests(tiny_model):
    held = Held(tiny_model)
    # max_gather=1: one request per round, so the other two stay queued (a larger gather could take all three
    # into the round the held model is running, and the queue would never show them)
    app = create_app(held, ServeSettings(max_batch=1, max_gather=1, max_wait_ms=0))
    statuses: list[int] = []

    with live_server(app) as url:
        def call(i: int) -> None:
            statuses.append(httpx.post(f"{url}/v1/embed", json={"sentences": [f"s {i}"]}, timeout=30).status_code)

        callers = [threading.Thread(target=call, args=(i,)) for i in range(3)]
        for caller in callers:
            caller.start()
        assert held.entered.wait(10)
        # Shut down only once the other two requests are queued behind the busy model; before that they may
        # not have connected yet and would (rightly) be refused.
        deadline = time.monotonic() + 10
        while app.state.batcher.queue_depth < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert app.state.batcher.queue_depth == 2
        threading.Timer(0.5, held.release.set).start()  # the model is still busy when shutdown begins
    # leaving the block asked uvicorn to exit: it stopped accepting, waited for the open requests, then the
    # lifespan closed the batcher
    for caller in callers:
        caller.join(30)
    assert statuses == [200, 200, 200]
    with pytest.raises(httpx.ConnectError):
        httpx.post(f"{url}/v1/embed", json={"sentences": ["late"]}, timeout=5)


def test_lifespan_shutdown_closes_the_batcher(tiny_model):
    app = create_app(tiny_model)
    with TestClient(app) as http:
        assert http.post("/v1/embed", json={"sentences": ["a"]}).status_code == 200
    assert app.state.batcher.close(0) is True  # already stopped by the lifespan


def test_bad_settings_are_user_errors():
    with pytest.raises(MtstError, match="max_batch=0"):
        ServeSettings(max_batch=0)
    with pytest.raises(MtstError, match="max_gather=0"):
        ServeSettings(max_gather=0)


@pytest.mark.parametrize(("argv", "policy", "restarts"), [
    (["mtst", "serve", "--port", "9"], None, True),
    (["mtst", "serve"], "ACTIVE", False),  # the user's choice wins
    (["pytest", "tests"], None, False),  # called in-process: never replace the caller's process
])
def test_serve_restarts_once_with_passive_openmp(monkeypatch, argv, policy, restarts):
    import mtst.cli.serve

    calls = []
    monkeypatch.setattr(mtst.cli.serve.os, "execve", lambda *args: calls.append(args))
    monkeypatch.setattr(mtst.cli.serve.sys, "argv", argv)
    if policy is None:
        monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    else:
        monkeypatch.setenv("OMP_WAIT_POLICY", policy)
    mtst.cli.serve._restart_with_passive_openmp()
    assert bool(calls) == restarts
    if restarts:
        _, command, env = calls[0]
        assert command[1:] == ["-m", "mtst.cli", *argv[1:]] and env["OMP_WAIT_POLICY"] == "PASSIVE"


def test_cli_serve_passes_settings_and_api_key(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    import mtst.cli.serve
    from mtst.cli import app

    seen = {}
    monkeypatch.setattr(mtst.cli.serve, "serve_model", lambda *args, **kwargs: seen.update(args=args))
    monkeypatch.setenv("MTST_API_KEY", "from-env")
    result = CliRunner().invoke(app, ["serve", "--model", str(tmp_path), "--port", "9001", "--max-batch", "8",
                                      "--max-gather", "32", "--cors-origin", "http://a.test"])
    assert result.exit_code == 0, result.output
    model, backend, host, port, settings = seen["args"]
    assert (model, backend, host, port) == (tmp_path, "auto", "127.0.0.1", 9001)
    assert settings.api_key == "from-env" and settings.max_batch == 8 and settings.max_gather == 32
    assert settings.cors_origins == ("http://a.test",)


def test_embedding_responses_say_which_texts_were_cut(tiny_model):
    app = create_app(tiny_model, ServeSettings(max_chars=2000))
    long, short = "the cat sat on the mat " * 20, "the cat sat"  # ~122 tokens: cut at the backbone's 48
    with TestClient(app) as http:
        embed = http.post("/v1/embed", json={"sentences": [short, long, long]}).json()
        plain = http.post("/v1/embed", json={"sentences": [short]}).json()
        openai = http.post("/v1/embeddings", json={"input": [long, short]}).json()
        similar = http.post("/v1/similarity", json={"sentences": [short, long, short]}).json()
        uncut = http.post("/v1/similarity", json={"sentences": [short, short]}).json()
        info = http.get("/v1/model").json()
    assert embed["truncated"] == [1, 2] and len(embed["embeddings"]) == 3 and "truncated" not in plain
    assert similar["truncated"] == [1] and len(similar["similarity"]) == 3 and "truncated" not in uncut
    assert openai["data"][0]["truncated"] is True and "truncated" not in openai["data"][1]
    assert info["max_seq_length"] == tiny_model.config.encoder.max_seq_length
    assert info["embedding_max_seq_length"] == 48


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_predict_answers_a_multi_label_head_with_label_lists(tiny_st_dir, tmp_path, backend):
    from mtst import MultiTaskModel
    from mtst.inference.backends import load_predictor
    from mtst.inference.export import export_model

    labels = ["animal", "finance", "sport"]
    model = MultiTaskModel.from_backbone(tiny_st_dir)
    model.add_head("tags", "multi_label_classification", labels, hidden_dim=8)
    model.config.heads["tags"].thresholds = [0.0, 1.0, 0.5]  # animal always, finance never
    served = model if backend == "torch" else load_predictor(export_model(model.save(tmp_path / "m"), tmp_path / "x"))
    with TestClient(create_app(served)) as http:
        got = http.post("/v1/predict", json={"sentences": SENTENCES, "tasks": ["tags"]}).json()["predictions"]
        info = http.get("/v1/model").json()
    assert info["tasks"]["tags"] == {"type": "multi_label_classification", "labels": labels}
    for row, want in zip(got, model.predict(SENTENCES, tasks=["tags"]), strict=True):
        assert set(row["tags"]) == {"labels", "scores"} and row["tags"]["labels"][:1] == ["animal"]
        assert "finance" not in row["tags"]["labels"] and list(row["tags"]["scores"]) == labels
        assert [row["tags"]["scores"][name] for name in labels] == pytest.approx(
            [want["tags"]["scores"][name] for name in labels], abs=1e-4)
