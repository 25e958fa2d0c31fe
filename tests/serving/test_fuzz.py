"""Hypothesis fuzzing of the HTTP app: 1,250 generated malformed or hostile requests, never a 5xx.

Wrong types, huge lists, huge strings, invalid UTF-8, deep nesting, missing fields, wrong content
types, odd paths, methods and headers. The app runs in-process (TestClient re-raises any server
exception, so an unhandled error fails the test even before its status is checked).
"""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mtst import MultiTaskModel
from mtst.serving.app import ServeSettings, create_app

POSTS = ["/v1/embeddings", "/v1/embed", "/v1/predict", "/v1/similarity"]
FIELDS = ["sentences", "input", "tasks", "normalize", "model", "encoding_format", "dimensions", "user"]


def fuzz(examples: int):
    """Deterministic (derandomized) Hypothesis settings; the counts below add up to 1,250 requests."""
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))



json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=80),
    lambda children: st.lists(children, max_size=12) | st.dictionaries(st.text(max_size=12), children, max_size=6),
    max_leaves=40,
)
hostile_field_values = st.one_of(
    json_values,
    st.lists(st.text(max_size=300), min_size=0, max_size=40),  # often over max_sentences / max_chars
    st.lists(st.integers(), max_size=20),  # token ids
    st.lists(st.lists(st.integers(), max_size=5), max_size=5),
    st.text(min_size=0, max_size=3000),
    st.sampled_from(["float", "base64", "", "int8", "topic", "ner", None, 32, 0, -1, 10**30]),
)


@pytest.fixture(scope="module")
def client(tiny_st_dir):
    model = MultiTaskModel.from_backbone(tiny_st_dir)
    model.add_head("topic", "sentence_classification", ["a", "b"])
    model.add_head("ner", "token_classification", ["O", "B-PER", "I-PER"])
    limits = ServeSettings(max_sentences=4, max_chars=64, max_body_bytes=4096, max_wait_ms=0, timeout_s=10)
    with TestClient(create_app(model, limits)) as test_client:
        yield test_client
    with TestClient(create_app(model, limits)) as fresh:  # the model itself still works after the storm
        assert fresh.post("/v1/embed", json={"sentences": ["ok"]}).status_code == 200


def check(response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:300])
    is_json = response.headers.get("content-type", "").startswith("application/json")
    if response.status_code >= 400 and is_json and response.content:  # HEAD answers carry no body
        assert "message" in response.json().get("error", {}) or "detail" in response.json()


@fuzz(300)
@given(path=st.sampled_from(POSTS), body=json_values)
def test_any_json_value_as_body(client, path, body):
    check(client.post(path, content=json.dumps(body), headers={"content-type": "application/json"}))


@fuzz(350)
@given(path=st.sampled_from(POSTS),
       body=st.dictionaries(st.sampled_from(FIELDS), hostile_field_values, max_size=5))
def test_known_fields_with_hostile_values(client, path, body):
    # json.dumps, not httpx's json=: it writes inf/nan as Infinity/NaN, which the server must also survive.
    check(client.post(path, content=json.dumps(body), headers={"content-type": "application/json"}))


@fuzz(200)
@given(path=st.sampled_from(POSTS), raw=st.binary(max_size=600),
       content_type=st.sampled_from(["application/json", "text/plain", "", "application/x-www-form-urlencoded",
                                     "multipart/form-data; boundary=x", "application/json; charset=latin-1",
                                     "application/vnd.api+json", "\u00e9/\u00e9"]))
def test_raw_bytes_and_content_types(client, path, raw, content_type):
    prefix = b'{"sentences": ["' if raw[:1] == b"\x00" else b""
    headers = {"content-type": content_type.encode("utf-8")} if content_type else {}
    check(client.post(path, content=prefix + raw, headers=headers))


@fuzz(100)
@given(path=st.sampled_from(POSTS), depth=st.integers(1, 4000), opener=st.sampled_from(["[", '{"a":', '{"sentences":']))
def test_deep_nesting(client, path, depth, opener):
    closer = "]" if opener == "[" else "}"
    body = opener * depth + "1" + closer * depth
    check(client.post(path, content=body, headers={"content-type": "application/json"}))


@fuzz(150)
@given(path=st.sampled_from(POSTS), count=st.integers(0, 3000), size=st.integers(0, 5000),
       field=st.sampled_from(["sentences", "input"]))
def test_huge_lists_and_strings(client, path, count, size, field):
    check(client.post(path, json={field: ["x" * size] * min(count, 50) if count else "y" * size}))


@fuzz(150)
@given(method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]),
       path=st.sampled_from([*POSTS, "/v1/model", "/health", "/metrics", "/", "/static/app.js", "/static/../x",
                             "/v1", "/docs", "/%ff", "/v1/embed/extra"]),
       auth=st.sampled_from([None, "", "Bearer", "Bearer x", "Basic Zm9vOmJhcg==", "\u00e9\u00e9"]))
def test_methods_paths_and_headers(client, method, path, auth):
    headers = {} if auth is None else {"authorization": auth.encode("utf-8")}
    check(client.request(method, path, headers=headers, content=b'{"sentences": ["a"]}'))



def test_health_after_the_fuzz(client):
    response = client.get("/health")
    assert response.status_code == 200 and response.json() == {"status": "ok", "queue_depth": 0}
