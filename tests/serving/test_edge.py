"""The HTTP edge on its own: JSON responses (orjson, numpy), the error shape and request metrics."""

from __future__ import annotations

import json

import numpy as np

from mtst.serving.edge import Metrics, error_response, json_response


def test_float32_arrays_serialise_exactly_and_compactly():
    vectors = np.random.default_rng(0).standard_normal((3, 384)).astype(np.float32)  # (N, H)
    response = json_response({"model": "m", "embeddings": vectors, "n": np.int64(3)})
    assert response.media_type == "application/json" and response.status_code == 200
    body = json.loads(response.body)
    back = np.array(body["embeddings"], dtype=np.float32)
    assert np.array_equal(back, vectors) and body["n"] == 3  # every float32 round-trips bit for bit
    # shortest float32 text (~10 chars), not the float64 widening tolist() gives (~19 chars)
    assert len(response.body) < 3 * 384 * 13
    assert str(float(vectors[0, 0])) not in response.body.decode()


def test_error_response_is_openai_shaped():
    response = error_response(429, "server busy", {"Retry-After": "2"}, details=[{"loc": ["body"]}])
    assert response.status_code == 429 and response.headers["retry-after"] == "2"
    assert json.loads(response.body) == {"error": {"message": "server busy", "type": "invalid_request_error",
                                                   "code": 429, "details": [{"loc": ["body"]}]}}
    assert json.loads(error_response(500, "x").body)["error"]["type"] == "server_error"


def test_request_metrics_count_per_path_and_status():
    metrics = Metrics()
    for status in (200, 200, 422):
        metrics.observe_request("/v1/embed", status, 0.003)
    value = metrics.registry.get_sample_value
    assert value("mtst_requests_total", {"path": "/v1/embed", "status": "200"}) == 2
    assert value("mtst_requests_total", {"path": "/v1/embed", "status": "422"}) == 1
    assert value("mtst_errors_total", {"path": "/v1/embed", "status": "422"}) == 1
    assert value("mtst_errors_total", {"path": "/v1/embed", "status": "200"}) is None  # only >= 400 are errors
    assert value("mtst_request_seconds_count", {"path": "/v1/embed"}) == 3
