"""The parts of `clip serve` that need no server: the dynamic batcher, the encoder, the page, metrics, the extra.

Specifications: inputs of concurrent callers are gathered into batches of at most max_batch, on the model's one
thread, and each caller gets its own outputs; a batch's failure reaches only its callers; batched embeddings equal
one-at-a-time ones; the page shows any text as text (never as markup).
"""

from __future__ import annotations

import asyncio
import threading
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import clip_core
from clip_core.cli import main
from clip_core.errors import ClipError
from clip_core.index import SearchHit
from clip_core.serve import SERVE_MODULES, require_serve_extra
from clip_core.serve.batcher import DynamicBatcher
from clip_core.serve.encoder import Encoder
from clip_core.serve.limits import DRAIN_FACTOR, BodyLimit
from clip_core.serve.metrics import Metrics
from clip_core.serve.page import PageState, render_page


def run_batches(
    sizes: list[int], max_batch: int, fail_on: int | None = None
) -> tuple[list[list[int]], list[object], set[str]]:
    """Submit requests of ``sizes`` inputs at once; the batches run, each caller's result, the threads used."""
    batches: list[list[int]] = []
    threads: set[str] = set()

    def double(inputs: list[int]) -> list[int]:
        threads.add(threading.current_thread().name)
        batches.append(list(inputs))
        if fail_on is not None and fail_on in inputs:
            raise ValueError(f"cannot do {fail_on}")
        return [2 * value for value in inputs]

    async def scenario() -> list[object]:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1, thread_name_prefix="model") as executor:
            batcher: DynamicBatcher[int, int] = DynamicBatcher(double, executor, max_batch=max_batch, max_wait=0)
            batcher.start()
            starts = [sum(sizes[:i]) for i in range(len(sizes))]
            calls = [batcher.submit(list(range(s, s + n))) for s, n in zip(starts, sizes, strict=True)]
            results = await asyncio.gather(*calls, return_exceptions=True)
            after = await batcher.submit([1000])
            await batcher.stop()
            return [*results, after]

    return batches, asyncio.run(scenario()), threads


def test_concurrent_inputs_are_gathered_into_batches_of_at_most_max_batch() -> None:
    batches, results, threads = run_batches([3, 3, 4], max_batch=4)
    assert batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9], [1000]]
    assert results == [[0, 2, 4], [6, 8, 10], [12, 14, 16, 18], [2000]]
    assert len(threads) == 1 and threads.pop().startswith("model")


def test_max_batch_one_runs_each_input_alone() -> None:
    batches, results, _ = run_batches([2, 1], max_batch=1)
    assert batches == [[0], [1], [2], [1000]]
    assert results == [[0, 2], [4], [2000]]


def test_a_failing_batch_fails_only_its_callers_and_the_next_batch_is_served() -> None:
    batches, results, _ = run_batches([2, 2, 2], max_batch=2, fail_on=3)
    assert batches == [[0, 1], [2, 3], [4, 5], [1000]]
    assert results[0] == [0, 2] and results[2] == [8, 10] and results[3] == [2000]
    assert isinstance(results[1], ValueError)


def test_a_lone_input_is_answered_when_the_wait_ends_without_company() -> None:
    async def scenario() -> list[str]:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1) as executor:
            batcher: DynamicBatcher[str, str] = DynamicBatcher(
                lambda xs: [x.upper() for x in xs], executor, max_batch=64, max_wait=0.01
            )
            batcher.start()
            try:
                return await batcher.submit(["alone"])
            finally:
                await batcher.stop()

    assert asyncio.run(scenario()) == ["ALONE"]


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        return Encoder(clip_core.create_model("tiny"))


@settings(max_examples=25, deadline=None)
@given(st.lists(st.text(max_size=40), min_size=1, max_size=12))
def test_batched_text_embeddings_equal_one_at_a_time_ones(encoder: Encoder, texts: list[str]) -> None:
    """Property: embedding texts together gives each the embedding it gets alone, within 1e-5, unit length."""
    together = torch.stack(encoder.texts(texts))
    alone = torch.cat([encoder.model.encode_text(encoder.tokenizer([text]), normalize=True) for text in texts])
    torch.testing.assert_close(together, alone.detach(), atol=1e-5, rtol=0)


@settings(max_examples=10, deadline=None)
@given(st.lists(st.tuples(st.integers(8, 60), st.integers(8, 60), st.integers(0, 255)), min_size=1, max_size=6))
def test_batched_image_embeddings_equal_one_at_a_time_ones(
    encoder: Encoder, shapes: list[tuple[int, int, int]]
) -> None:
    """Property: embedding images together gives each the embedding it gets alone, within 1e-5."""
    images = [Image.new("RGB", (w, h), (value, 255 - value, value // 2)) for w, h, value in shapes]
    together = torch.stack(encoder.images([encoder.pixels(image) for image in images]))
    preprocess = clip_core.get_preprocess(encoder.model.card)
    alone = torch.cat([encoder.model.encode_image(preprocess.batch([image]), normalize=True) for image in images])
    torch.testing.assert_close(together, alone.detach(), atol=1e-5, rtol=0)


class _Parsed(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += attrs

    def handle_data(self, data: str) -> None:
        self.text.append(data)


PAGE_TAGS = {"html", "head", "meta", "title", "style", "body", "header", "h1", "p", "form", "input", "button"}
PAGE_TAGS |= {"ol", "li", "img", "div", "span"}


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=30), st.lists(st.text(min_size=1, max_size=30), min_size=1, max_size=4), st.booleans())
def test_the_page_shows_any_query_and_source_as_text_never_as_markup(
    query: str, sources: list[str], images: bool
) -> None:
    """Property: whatever the query and the files' names, the page holds only its own tags, and each name comes
    back intact as text (and as the thumbnail's alt text)."""
    hits = [SearchHit(row, 1 - row / 10, source) for row, source in enumerate(sources)]
    state = PageState(model="tiny", searched="e.npy", rows=4, query=query, hits=hits, query_label=query)
    parsed = _Parsed()
    parsed.feed(render_page(state, lambda row: images))
    parsed.close()
    assert set(parsed.tags) <= PAGE_TAGS
    assert parsed.tags.count("img") == (len(sources) if images else 0)
    if images:
        assert [value for name, value in parsed.attributes if name == "alt"] == sources
    assert ("value", query) in parsed.attributes


def test_metrics_are_prometheus_text_with_cumulative_buckets() -> None:
    metrics = Metrics()
    for size in (1, 3, 3, 64):
        metrics.batch("text", size)
    metrics.request("/v1/embeddings", 200, 0.02)
    metrics.request("/v1/embeddings", 400, 0.001)
    lines = metrics.render({"text": 2}).splitlines()
    assert 'clip_batch_size_bucket{modality="text",le="1"} 1' in lines
    assert 'clip_batch_size_bucket{modality="text",le="4"} 3' in lines
    assert 'clip_batch_size_bucket{modality="text",le="+Inf"} 4' in lines
    assert 'clip_batch_size_sum{modality="text"} 71.000000' in lines
    assert 'clip_requests_total{route="/v1/embeddings",status="400"} 1' in lines
    assert 'clip_request_seconds_bucket{route="/v1/embeddings",le="0.025"} 2' in lines
    assert 'clip_inputs_total{modality="text"} 71' in lines and 'clip_inputs_waiting{modality="text"} 2' in lines


def test_a_missing_serve_extra_is_a_clip_error_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(SERVE_MODULES, "clip_sdk_no_such_module", "no-such-package")
    with pytest.raises(ClipError, match=r"no-such-package.*pip install 'clip-core\[serve\]'"):
        require_serve_extra()


def test_serve_refuses_an_index_it_cannot_open_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("fastapi")  # the extra comes first: without it, the error names the extra
    missing = tmp_path / "no-index"
    assert main(["serve", "--model", "tiny", "--index", str(missing)]) == 2
    assert str(missing) in capsys.readouterr().err


def test_serve_refuses_bad_options_and_embeddings_of_another_model_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("fastapi")  # the extra comes first: without it, the error names the extra
    Image.new("RGB", (20, 20), "red").save(tmp_path / "red.png")
    out = tmp_path / "e.npy"
    assert main(["embed", str(tmp_path / "red.png"), "--model", "tiny", "-o", str(out), "--workers", "0"]) == 0
    assert main(["serve", "--model", "tiny-wide", "--embeddings", str(out), "--max-batch", "0"]) == 2
    assert main(["serve", "--model", "tiny-wide", "--threads", "0"]) == 2
    assert main(["serve", "--model", "tiny-wide", "--embeddings", str(out)]) == 2
    err = capsys.readouterr().err
    assert (
        "--max-batch must be at least 1" in err
        and "--threads must be at least 1" in err
        and "card 'tiny-wide' embeds 32 wide" in err
    )


def test_an_index_serves_the_exact_searchers_hits_and_thumbnails_of_image_rows_only(tmp_path: Path) -> None:
    from clip_core.embedding.file import write_embeddings
    from clip_core.index import build_index
    from clip_core.serve.searchers import EmbeddingsSearcher, open_index_searcher

    vectors = torch.nn.functional.normalize(torch.randn(6, 4, generator=torch.Generator().manual_seed(0)), dim=-1)
    sources = [str(tmp_path / f"{row}.png") for row in range(5)]
    entries: list[dict[str, str]] = [{"source": source} for source in sources] + [{"text": "../../etc/passwd"}]
    write_embeddings(tmp_path / "e.npy", vectors, entries, {})
    exact = EmbeddingsSearcher(tmp_path / "e.npy")
    build_index(tmp_path / "e.npy", tmp_path / "e.index", progress=False)
    index = open_index_searcher(tmp_path / "e.index")
    assert [exact.image_file(row) for row in (0, 4, 5, 6, -1)] == [Path(sources[0]), Path(sources[4]), None, None, None]
    assert [index.image_file(row) for row in range(-1, 7)] == [exact.image_file(row) for row in range(-1, 7)]
    [found], [wanted] = index.search(vectors[2:3], 3), exact.search(vectors[2:3], 3)
    assert [hit.row for hit in found] == [hit.row for hit in wanted] and found[0].row == 2


async def _through_body_limit(parts: list[tuple[bytes, bool]], declared: int | None) -> tuple[int, dict[str, str], int]:
    """Send a request whose body comes in ``parts`` (bytes, more to come) through ``BodyLimit`` (1,000 bytes) in
    front of an app that reads the whole body, as a server's transport would; after the last part, receiving waits
    until the answer is sent, as uvicorn's does. The status, headers and parts read."""
    pending = list(parts)
    answered = asyncio.Event()
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if not pending:
            await answered.wait()
            return {"type": "http.disconnect"}
        body, more = pending.pop(0)
        return {"type": "http.request", "body": body, "more_body": more}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            answered.set()

    async def app(scope: Any, receive: Any, send: Any) -> None:  # reads the body, as FastAPI does
        while (await receive()).get("more_body", False):
            pass

    headers = [(b"content-length", str(declared).encode())] if declared is not None else []
    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}
    await asyncio.wait_for(BodyLimit(app, max_bytes=1000)(scope, receive, send), timeout=10)
    start = next(m for m in sent if m["type"] == "http.response.start")
    names = {bytes(k).decode(): bytes(v).decode() for k, v in start["headers"]}
    return int(start["status"]), names, len(parts) - len(pending)


@pytest.mark.parametrize(
    ("parts", "declared", "kept_open"),
    [
        ([(b"x" * 600, True), (b"x" * 600, False)], None, True),  # over the limit at the last part: nothing to wait for
        ([(b"x" * 600, True), (b"x" * 600, True), (b"", False)], None, True),  # over, then the rest read and dropped
        ([(b"x" * 1200, False)], 1200, True),  # declared: read and dropped, the connection kept
        ([(b"x" * 700, True)] * (2 * DRAIN_FACTOR), 700 * 2 * DRAIN_FACTOR, False),  # too big to read: closed at once
    ],
)
def test_an_oversized_body_gets_a_413_without_waiting_for_more_than_it_sends(
    parts: list[tuple[bytes, bool]], declared: int | None, kept_open: bool
) -> None:
    status, headers, read = asyncio.run(_through_body_limit(parts, declared))
    assert status == 413
    assert (headers.get("connection") != "close") == kept_open
    assert read == (len(parts) if kept_open else 0)
