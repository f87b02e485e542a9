"""`clip serve` from outside: a real uvicorn process on loopback, spoken to over HTTP as any client would.

Specifications: /v1/embeddings returns what the model's encode_text / encode_image return (normalised), for each
of many concurrent requests; search and classification equal the library's; bad requests get 4xx answers in
OpenAI's error shape and the service keeps serving; only the listed files are ever served as thumbnails; SIGTERM
lets the request in flight finish.
"""

from __future__ import annotations

import asyncio
import base64
import html
import http.client
import io
import json
import signal
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest
import torch
from PIL import Image

import clip_core
from clip_core.embedding.file import read_embeddings
from clip_core.index import search_by_image, search_by_text
from clip_core.zeroshot import zero_shot_classifier, zero_shot_predict

httpx = pytest.importorskip("httpx")  # with the serve extra: nox installs both (CI never skips)
pytest.importorskip("fastapi")

pytestmark = pytest.mark.usefixtures("served_library")

TEXTS = ["a red circle", "a blue square", "", "x" * 300, "ünïcödé 🙂 text", "a photo of a green triangle"]


def data_url(image: Image.Image, kind: str = "PNG") -> str:
    buffer = io.BytesIO()
    image.save(buffer, format=kind)
    return f"data:image/{kind.lower()};base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def picture(seed: int, size: tuple[int, int] = (48, 40)) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels)


@pytest.fixture(scope="module")
def library(served_library: Any) -> Any:
    return served_library


@pytest.fixture(scope="module")
def model(library: Any) -> clip_core.ClipModel:
    return clip_core.load_checkpoint(library.model_dir).eval()


@pytest.fixture(scope="module")
def client(library: Any) -> httpx.Client:
    with httpx.Client(base_url=library.server.url, timeout=120) as session:
        yield session


def encode_texts(model: clip_core.ClipModel, texts: list[str]) -> torch.Tensor:
    with torch.no_grad():
        return model.encode_text(clip_core.get_tokenizer(model.card)(texts), normalize=True)


def encode_images(model: clip_core.ClipModel, images: list[Image.Image]) -> torch.Tensor:
    with torch.no_grad():
        return model.encode_image(clip_core.get_preprocess(model.card).batch(images), normalize=True)


def vectors(answer: httpx.Response) -> torch.Tensor:
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["object"] == "list" and [item["index"] for item in body["data"]] == list(range(len(body["data"])))
    assert all(item["object"] == "embedding" for item in body["data"])
    return torch.tensor([item["embedding"] for item in body["data"]])


def assert_error(answer: httpx.Response, status: int, param: str | None = None) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert error["type"] == ("not_found_error" if status == 404 else "invalid_request_error")
    if param is not None:
        assert error["param"] == param
    return dict(error)


def test_text_embeddings_equal_the_models_normalised_encode_text(client: httpx.Client, model: Any) -> None:
    texts = [text for text in TEXTS if text]
    got = vectors(client.post("/v1/embeddings", json={"input": texts, "model": "tiny"}))
    torch.testing.assert_close(got, encode_texts(model, texts), atol=1e-5, rtol=0)
    assert got.norm(dim=-1).sub(1).abs().max() < 1e-5
    single = vectors(client.post("/v1/embeddings", json={"input": texts[0]}))
    torch.testing.assert_close(single, encode_texts(model, texts[:1]), atol=1e-5, rtol=0)


def test_image_embeddings_from_data_urls_equal_the_models_normalised_encode_image(
    client: httpx.Client, model: Any
) -> None:
    images = [picture(1), picture(2, (90, 30)), picture(3).convert("L"), picture(4).convert("P")]
    urls = [data_url(images[0]), data_url(images[1], "JPEG"), data_url(images[2]), data_url(images[3], "GIF")]
    got = vectors(client.post("/v1/embeddings", json={"input": urls, "modality": "image"}))
    decoded = [Image.open(io.BytesIO(base64.b64decode(url.partition(",")[2]))) for url in urls]
    torch.testing.assert_close(got, encode_images(model, decoded), atol=1e-5, rtol=0)


def test_base64_encoding_holds_the_same_float32_vectors(client: httpx.Client) -> None:
    request = {"input": ["a red circle", "a blue square"]}
    floats = vectors(client.post("/v1/embeddings", json=request))
    answer = client.post("/v1/embeddings", json={**request, "encoding_format": "base64"})
    assert answer.status_code == 200
    rows = [np.frombuffer(base64.b64decode(item["embedding"]), dtype="<f4") for item in answer.json()["data"]]
    np.testing.assert_array_equal(np.stack(rows), floats.numpy())
    assert answer.json()["usage"]["prompt_tokens"] > 0


def test_32_concurrent_requests_each_get_their_own_answer(library: Any, model: Any) -> None:
    texts = [f"request {i}: {'a red circle ' * (i % 5)}{i}" for i in range(24)]
    images = [picture(100 + i, (32 + i, 40)) for i in range(8)]

    async def ask() -> list[torch.Tensor]:
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(base_url=library.server.url, timeout=120, limits=limits) as session:
            calls = [session.post("/v1/embeddings", json={"input": text}) for text in texts]
            calls += [
                session.post("/v1/embeddings", json={"input": [data_url(i)], "modality": "image"}) for i in images
            ]
            return [vectors(answer)[0] for answer in await asyncio.gather(*calls)]

    got = torch.stack(asyncio.run(ask()))
    want = torch.cat([encode_texts(model, texts), encode_images(model, images)])
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_search_equals_the_library_search_of_the_embeddings_file(
    client: httpx.Client, model: Any, library: Any
) -> None:
    embeddings = read_embeddings(library.embeddings)
    answer = client.post("/v1/search", json={"text": "a red circle", "top_k": 3})
    assert answer.status_code == 200, answer.text
    [want] = search_by_text(model, embeddings, ["a red circle"], 3)
    got = answer.json()["data"]
    assert [(hit["row"], hit["source"]) for hit in got] == [(hit.row, hit.source) for hit in want]
    assert [hit["score"] for hit in got] == pytest.approx([hit.score for hit in want], abs=1e-5)
    query = Image.open(library.pictures / "blue-square.png")
    by_image = client.post("/v1/search", json={"image": data_url(query), "top_k": 2}).json()["data"]
    [want] = search_by_image(model, embeddings, [query], 2)
    assert [hit["row"] for hit in by_image] == [hit.row for hit in want]
    assert by_image[0]["source"] == str(library.pictures / "blue-square.png")


def test_classify_equals_zero_shot_predict_with_the_same_templates(client: httpx.Client, model: Any) -> None:
    labels, templates = ["circle", "square", "triangle"], ["a photo of a {}.", "a drawing of a {}."]
    image = picture(9)
    answer = client.post("/v1/classify", json={"image": data_url(image), "labels": labels, "templates": templates})
    assert answer.status_code == 200, answer.text
    got = {item["label"]: item["probability"] for item in answer.json()["data"]}
    classifier = zero_shot_classifier(model, clip_core.get_tokenizer(model.card), labels, templates)
    pixels = clip_core.get_preprocess(model.card).batch([image])
    want = zero_shot_predict(model, pixels, classifier)[0].tolist()
    assert [got[label] for label in labels] == pytest.approx(want, abs=1e-5)
    probabilities = [item["probability"] for item in answer.json()["data"]]
    assert probabilities == sorted(probabilities, reverse=True)


def test_the_page_searches_by_text_and_by_an_uploaded_image(client: httpx.Client, library: Any) -> None:
    page = client.get("/", params={"q": "a red circle", "k": 3})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src" not in page.headers["content-security-policy"]  # default-src 'none': no scripts at all
    assert page.text.count('<img src="/thumbnails/') == 3
    upload = (library.pictures / "green-triangle.png").read_bytes()
    found = client.post("/", files={"image": ("green-triangle.png", upload, "image/png")}, data={"k": "2"})
    assert found.status_code == 200 and found.text.count('<img src="/thumbnails/') == 2
    rows = [entry["source"] for entry in read_embeddings(library.embeddings).entries]
    first = int(found.text.split('<img src="/thumbnails/')[1].split('"')[0])
    assert rows[first].endswith("green-triangle.png")  # the picture finds itself first
    broken = client.post("/", files={"image": ("notes.png", b"not a picture", "image/png")})
    assert broken.status_code == 400 and "notes.png: the image cannot be decoded" in broken.text
    assert client.post("/", files={"image": ("empty.png", b"", "image/png")}).status_code == 400


BAD_REQUESTS: list[tuple[str, str, Any, int, str | None]] = [
    ("/v1/embeddings", "malformed JSON", b'{"input": ["a", ', 400, None),
    ("/v1/embeddings", "not an object", b"[1, 2]", 400, None),
    ("/v1/embeddings", "no input", {"model": "tiny"}, 400, "input"),
    ("/v1/embeddings", "empty string", {"input": ""}, 400, "input"),
    ("/v1/embeddings", "empty list", {"input": []}, 400, "input"),
    ("/v1/embeddings", "an empty string in the list", {"input": ["ok", ""]}, 400, "input"),
    ("/v1/embeddings", "numbers", {"input": [1, 2]}, 400, None),
    ("/v1/embeddings", "unknown modality", {"input": "a", "modality": "audio"}, 400, "modality"),
    ("/v1/embeddings", "image URL as text", {"input": "data:image/png;base64,iVBORw0KGgo="}, 400, "modality"),
    ("/v1/embeddings", "text as image", {"input": "a red circle", "modality": "image"}, 400, "input"),
    (
        "/v1/embeddings",
        "undecodable image",
        {"input": "data:image/png;base64,bm90IGEgcG5n", "modality": "image"},
        400,
        "input",
    ),
    ("/v1/embeddings", "invalid base64", {"input": "data:image/png;base64,@@@", "modality": "image"}, 400, "input"),
    ("/v1/embeddings", "an http URL", {"input": "http://example.com/a.png", "modality": "image"}, 400, "input"),
    ("/v1/embeddings", "unknown encoding", {"input": "a", "encoding_format": "int8"}, 400, "encoding_format"),
    ("/v1/embeddings", "another model", {"input": "a", "model": "gpt-4"}, 404, "model"),
    ("/v1/search", "no query", {"top_k": 3}, 400, None),
    ("/v1/search", "two queries", {"text": "a", "image": "data:,", "top_k": 3}, 400, None),
    ("/v1/search", "top_k 0", {"text": "a", "top_k": 0}, 400, "top_k"),
    ("/v1/classify", "no labels", {"image": "data:image/png;base64,AAAA", "labels": []}, 400, "labels"),
    ("/v1/classify", "undecodable image", {"image": "data:image/png;base64,AAAA", "labels": ["a"]}, 400, "image"),
]


@pytest.mark.parametrize(
    ("path", "body", "status", "param"),
    [(path, body, status, param) for path, _, body, status, param in BAD_REQUESTS],
    ids=[f"{path} {name}" for path, name, *_ in BAD_REQUESTS],
)
def test_bad_requests_get_4xx_in_openais_shape_and_the_next_request_is_served(
    client: httpx.Client, path: str, body: Any, status: int, param: str | None
) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    answer = client.post(path, content=content, headers={"content-type": "application/json"})
    assert_error(answer, status, param)
    assert vectors(client.post("/v1/embeddings", json={"input": "still serving"})).shape == (1, 16)


def test_bodies_over_the_size_limit_are_refused_with_413_declared_or_streamed(client: httpx.Client) -> None:
    big = json.dumps({"input": "data:image/png;base64," + "A" * (3 << 19), "modality": "image"}).encode()
    assert_error(client.post("/v1/embeddings", content=big, headers={"content-type": "application/json"}), 413)

    def chunks() -> Any:  # no Content-Length: the limit applies to the bytes as they stream in
        step = 1 << 16
        for start in range(0, len(big), step):
            yield big[start : start + step]

    streamed = client.post("/v1/embeddings", content=chunks(), headers={"content-type": "application/json"})
    assert_error(streamed, 413)
    assert vectors(client.post("/v1/embeddings", json={"input": "still serving"})).shape == (1, 16)


@pytest.mark.parametrize("over", [1, 3])
def test_a_client_that_sends_the_whole_body_before_reading_gets_the_413(client: httpx.Client, over: int) -> None:
    """Python's own http.client (as urllib and many simple clients) writes a body whole before reading the answer:
    the service reads and drops an oversized body (up to 4 times the limit) so that the 413 reaches such a client
    instead of a connection reset."""
    url = urlsplit(str(client.base_url))
    body = b'{"input": "' + b"a" * (over << 20) + b'"}'  # the test server's limit is 1 MB
    connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=120)
    try:
        connection.request("POST", "/v1/embeddings", body=body, headers={"content-type": "application/json"})
        answer = connection.getresponse()
        assert answer.status == 413
        assert json.loads(answer.read())["error"]["code"] == "request_too_large"
    finally:
        connection.close()
    assert vectors(client.post("/v1/embeddings", json={"input": "still serving"})).shape == (1, 16)


def test_unknown_routes_and_methods_answer_in_the_error_shape(client: httpx.Client) -> None:
    assert_error(client.get("/v1/nothing"), 404)
    assert client.get("/v1/embeddings").status_code == 405
    assert set(client.get("/v1/embeddings").json()["error"]) == {"message", "type", "param", "code"}


def raw_get(url: str, path: str) -> tuple[int, bytes]:
    """GET ``path`` exactly as written (no client-side normalisation of ``..``)."""
    address = urlsplit(url)
    connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=60)
    try:
        connection.request("GET", path)
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


@pytest.mark.parametrize(
    "path",
    [
        "/thumbnails/../../../../../../etc/passwd",
        "/thumbnails/..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/thumbnails/%2e%2e/%2e%2e/etc/passwd",
        "/thumbnails//etc/passwd",
        "/thumbnails/-1",
        "/thumbnails/7",
        "/thumbnails/99999999999999999999",
        "/thumbnails/0x1",
        "/../../../../etc/passwd",
        "/thumbnails/1/../../etc/passwd",
    ],
)
def test_no_file_but_the_listed_ones_is_ever_served(library: Any, path: str) -> None:
    status, body = raw_get(library.server.url, path)
    assert 400 <= status < 500 and b"root:" not in body
    assert raw_get(library.server.url, "/health")[0] == 200


def test_each_listed_image_is_served_as_a_small_jpeg(client: httpx.Client, library: Any) -> None:
    rows = len(read_embeddings(library.embeddings).entries)
    for row in range(rows):
        answer = client.get(f"/thumbnails/{row}")
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg"
        image = Image.open(io.BytesIO(answer.content))
        assert image.format == "JPEG" and max(image.size) <= 256


def test_health_metrics_and_the_openapi_docs(client: httpx.Client, library: Any) -> None:
    rows = len(read_embeddings(library.embeddings).entries)
    assert client.get("/health").json() == {"status": "ok", "model": "tiny", "embed_dim": 16, "rows": rows}
    client.post("/v1/embeddings", json={"input": ["one", "two", "three"]})
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    lines = metrics.text.splitlines()
    assert any(line.startswith('clip_requests_total{route="/v1/embeddings",status="200"} ') for line in lines)
    assert any(line.startswith('clip_batch_size_bucket{modality="text",le="+Inf"} ') for line in lines)
    assert any(line.startswith('clip_request_seconds_count{route="/v1/embeddings"} ') for line in lines)
    inputs = next(line for line in lines if line.startswith('clip_inputs_total{modality="text"} '))
    assert int(inputs.split()[-1]) >= 3
    assert 'clip_inputs_waiting{modality="text"} 0' in lines
    schema = client.get("/openapi.json").json()
    assert {"/v1/embeddings", "/v1/search", "/v1/classify", "/health", "/metrics"} <= set(schema["paths"])
    assert client.get("/swagger").status_code == 200  # FastAPI's Swagger UI, scripts from its CDN


def test_the_openapi_schema_documents_the_errors_as_they_are_answered(client: httpx.Client) -> None:
    """Invalid requests are 400s in OpenAI's shape, not FastAPI's 422 (which the schema would otherwise list)."""
    schema = client.get("/openapi.json").json()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            answers = operation["responses"]
            assert "422" not in answers, (method, path)
            for status, answer in answers.items():
                if status.startswith("4"):
                    assert answer["content"]["application/json"]["schema"] == {
                        "$ref": "#/components/schemas/ErrorResponse"
                    }, (method, path, status)
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    assert set(schema["paths"]["/v1/search"]["post"]["responses"]) == {"200", "400", "404", "413"}
    assert client.post("/v1/search", json={"top_k": 0, "text": "x"}).status_code == 400


def test_the_api_reference_at_docs_is_rendered_here_without_scripts(client: httpx.Client) -> None:
    """``/docs`` needs no network (Swagger UI's scripts come from a CDN) and runs nothing: every route and every
    request field is on the page, with its description and limits."""
    docs = client.get("/docs")
    assert docs.status_code == 200 and docs.headers["content-type"].startswith("text/html")
    assert "script-src" not in docs.headers["content-security-policy"]  # default-src 'none': no script runs
    page = docs.text
    assert "<script" not in page and "http://" not in page and "https://" not in page
    schema = client.get("/openapi.json").json()
    for path in schema["paths"]:
        assert f"<code>{html.escape(path)}</code>" in page
    for model in ("EmbeddingRequest", "SearchRequest", "ClassifyRequest"):
        assert f'<h3 id="{model}">' in page
        for field in schema["components"]["schemas"][model]["properties"]:
            assert f"<td><code>{field}</code>" in page
    assert "how many rows to return; default <code>10</code>; ≥ 1; ≤ 1000" in page
    assert "<code>encode_text</code>" in page  # the docstrings' ``code`` as code


def test_sigterm_lets_the_request_in_flight_finish(clip_serve: Callable[..., Any], library: Any, model: Any) -> None:
    """A batch that waits 3 s for company is in flight when SIGTERM comes: it is answered, then the server exits."""
    server = clip_serve("--model", str(library.model_dir), "--max-wait-ms", "3000")
    answers: list[httpx.Response] = []
    request = threading.Thread(
        target=lambda: answers.append(httpx.post(f"{server.url}/v1/embeddings", json={"input": "last"}, timeout=120))
    )
    request.start()
    deadline = time.monotonic() + 60
    while 'clip_inputs_waiting{modality="text"} 1' not in httpx.get(f"{server.url}/metrics").text:
        assert time.monotonic() < deadline, "the request never reached the batcher"
        time.sleep(0.05)
    server.process.send_signal(signal.SIGTERM)
    request.join(timeout=120)
    status = server.process.wait(timeout=120)
    torch.testing.assert_close(vectors(answers[0]), encode_texts(model, ["last"]), atol=1e-5, rtol=0)
    # uvicorn exits cleanly, then re-raises the signal it handled (exit status -SIGTERM) where it does so
    assert status in (0, -signal.SIGTERM) and "Application shutdown complete" in server.output(), server.output()
