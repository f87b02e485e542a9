"""FAISS indices of embeddings files: `clip index build`, `open_index(...).search`, `clip search --index`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import clip_core
from clip_core.cli import main
from clip_core.embedding.file import read_embeddings, write_embeddings
from clip_core.errors import ClipError, InputError
from clip_core.index import build_index, choose_kind, nearest, open_index, parse_size
from clip_core.index.build import FLAT_MAX_ROWS, HNSW_MAX_ROWS


def clustered(rows: int, dim: int, seed: int = 0) -> torch.Tensor:
    """Embeddings shaped like a model's: clusters spread along a few directions, plus a little noise."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(8, rows // 200), dim))
    spread = rng.standard_normal((16, dim)) / 4
    vectors = centres[rng.integers(0, len(centres), rows)] + rng.standard_normal((rows, 16)) @ spread
    vectors += 0.05 * rng.standard_normal((rows, dim))
    return torch.from_numpy(vectors.astype(np.float32))


def write_file(path: Path, vectors: torch.Tensor, model: str = "sha256:abc") -> Path:
    entries = [{"source": f"images/{row:06d}.jpg"} for row in range(vectors.shape[0])]
    manifest = {"format": "clip-embeddings/1", "model": {"fingerprint": model, "card": {"name": "tiny"}}}
    write_embeddings(path, vectors, entries, manifest)
    return path


def queries_near(vectors: torch.Tensor, count: int, seed: int = 5) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    picked = vectors[torch.from_numpy(rng.choice(vectors.shape[0], count, replace=False))]
    return picked + 0.05 * torch.from_numpy(rng.standard_normal(picked.shape).astype(np.float32))


def recall_at_10(found: list[list[clip_core.SearchHit]], exact: list[list[clip_core.SearchHit]]) -> float:
    hits = sum(len({hit.row for hit in a} & {hit.row for hit in b}) for a, b in zip(found, exact, strict=True))
    return hits / sum(len(line) for line in exact)


def test_flat_index_finds_what_exact_search_finds_with_the_same_scores_and_sources(tmp_path: Path) -> None:
    path = write_file(tmp_path / "e.npy", clustered(3_000, 24))
    index = build_index(path, progress=False)
    assert index.kind == "flat" and index.path == tmp_path / "e.npy.faiss"
    assert sorted(os.listdir(index.path)) == ["index.faiss", "index.json"]
    queries = queries_near(read_embeddings(path).vectors, 20)
    found, exact = index.search(queries, top_k=10), nearest(read_embeddings(path), queries, top_k=10)
    assert [[hit.row for hit in line] for line in found] == [[hit.row for hit in line] for line in exact]
    assert [[hit.source for hit in line] for line in found] == [[hit.source for hit in line] for line in exact]
    for ours, theirs in zip(found, exact, strict=True):
        assert [hit.score for hit in ours] == pytest.approx([hit.score for hit in theirs], abs=1e-5)


@pytest.mark.parametrize("kind", ["hnsw", "ivf-pq"])
def test_approximate_kinds_reach_the_recall_they_were_tuned_for_with_exact_scores(tmp_path: Path, kind: str) -> None:
    vectors = clustered(20_000, 32, seed=1)
    path = write_file(tmp_path / "e.safetensors", vectors)
    index = build_index(path, tmp_path / "idx", kind=kind, progress=False)
    assert index.kind == kind and index.recall >= 0.95
    queries = queries_near(vectors, 100)
    found, exact = index.search(queries, top_k=10), nearest(read_embeddings(path), queries, top_k=10)
    assert recall_at_10(found, exact) >= 0.95
    unit = torch.nn.functional.normalize(vectors, dim=-1)
    for query, line in zip(torch.nn.functional.normalize(queries, dim=-1), found, strict=True):
        assert [hit.score for hit in line] == pytest.approx([float(unit[hit.row] @ query) for hit in line], abs=1e-5)
        assert [hit.score for hit in line] == sorted((hit.score for hit in line), reverse=True)


def test_auto_chooses_flat_then_hnsw_then_ivf_pq_by_rows_and_memory_budget() -> None:
    assert choose_kind(FLAT_MAX_ROWS, 512, parse_size("4GB")) == "flat"
    assert choose_kind(FLAT_MAX_ROWS + 1, 512, parse_size("4GB")) == "hnsw"
    assert choose_kind(1_000_000, 512, parse_size("4GB")) == "hnsw"  # ~2.3 GB with its links
    assert choose_kind(HNSW_MAX_ROWS, 512, parse_size("8GB")) == "hnsw"
    assert choose_kind(HNSW_MAX_ROWS + 1, 512, parse_size("8GB")) == "ivf-pq"
    assert choose_kind(HNSW_MAX_ROWS, 512, parse_size("4GB")) == "ivf-pq"  # ~4.6 GB
    assert choose_kind(200_000, 512, parse_size("100MB")) == "ivf-pq"  # the graph would take ~0.46 GB


@pytest.mark.parametrize(
    ("text", "size"), [("4GB", 4 * 10**9), ("512MiB", 512 * 2**20), ("1.5g", 1_500_000_000), ("1000", 1000), (7, 7)]
)
def test_memory_budgets_read_as_people_write_them(text: str | int, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["lots", "4 parsecs", "-1GB", "0"])
def test_a_budget_that_is_not_a_size_is_refused(text: str) -> None:
    with pytest.raises(InputError, match=r"size|positive"):
        parse_size(text)


def test_an_index_of_a_changed_file_is_stale_but_one_of_a_touched_file_is_not(tmp_path: Path) -> None:
    vectors = clustered(500, 8)
    path = write_file(tmp_path / "e.npy", vectors)
    build_index(path, progress=False)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # same bytes, new time: a copy, a touch
    assert open_index(tmp_path / "e.npy.faiss").rows == 500
    write_file(path, vectors.flip(0))  # same size, other rows
    with pytest.raises(InputError, match="stale"):
        open_index(tmp_path / "e.npy.faiss")
    path.unlink()
    with pytest.raises(InputError, match="missing"):
        open_index(tmp_path / "e.npy.faiss")


def test_queries_of_the_wrong_width_and_folders_that_are_not_indices_are_refused(tmp_path: Path) -> None:
    path = write_file(tmp_path / "e.npy", clustered(100, 8))
    index = build_index(path, progress=False)
    with pytest.raises(InputError, match="8 wide"):
        index.search(torch.ones(2, 9))
    with pytest.raises(InputError, match="at least 1"):
        index.search(torch.ones(2, 8), top_k=0)
    with pytest.raises(InputError, match="not an index"):
        open_index(tmp_path)
    with pytest.raises(InputError, match="unknown index kind"):
        build_index(path, kind="lsh")


def test_top_k_beyond_the_row_count_returns_every_row(tmp_path: Path) -> None:
    index = build_index(write_file(tmp_path / "e.npy", clustered(7, 8)), progress=False)
    (line,) = index.search(torch.ones(1, 8), top_k=50)
    assert sorted(hit.row for hit in line) == list(range(7))


def test_without_faiss_the_error_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_file(tmp_path / "e.npy", clustered(50, 8))
    monkeypatch.setitem(sys.modules, "faiss", None)  # as if faiss-cpu were not installed
    with pytest.raises(ClipError, match=r"clip-core\[faiss\]"):
        build_index(path)


def test_cli_builds_an_index_and_search_through_it_ranks_as_exact_search(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.manual_seed(3)
    model_dir = clip_core.create_model("tiny").save_pretrained(tmp_path / "model")
    texts = tmp_path / "texts.txt"
    rng = np.random.default_rng(0)
    lines = ["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz  "), 30)) for _ in range(40)]
    texts.write_text("\n".join(lines) + "\n")
    out = tmp_path / "e.npy"
    assert main(["embed", "--texts", str(texts), "--model", str(model_dir), "-o", str(out), "--no-progress"]) == 0
    assert main(["index", "build", str(out), "--out", str(tmp_path / "idx"), "--no-progress"]) == 0
    built = capsys.readouterr().out
    assert "flat" in built and "40 x 16" in built
    search = ["search", str(out), "--model", str(model_dir), "--text", lines[7], "--json"]
    assert main(search) == 0
    exact = json.loads(capsys.readouterr().out)
    assert main([*search, "--index", str(tmp_path / "idx")]) == 0
    (indexed,) = json.loads(capsys.readouterr().out)
    assert [(hit["row"], hit["source"]) for hit in indexed["hits"]] == [
        (h["row"], h["source"]) for h in exact[0]["hits"]
    ]
    assert [hit["score"] for hit in indexed["hits"]] == pytest.approx([hit["score"] for hit in exact[0]["hits"]])
    assert main(["index", "info", str(tmp_path / "idx"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == 40


def test_cli_search_refuses_an_index_of_another_file_and_a_model_that_did_not_make_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one = write_file(tmp_path / "one.npy", clustered(30, 16))
    other = write_file(tmp_path / "other.npy", clustered(30, 16, seed=2))
    build_index(one, progress=False)
    assert main(["search", str(other), "--model", "tiny", "--text", "x", "--index", f"{one}.faiss"]) == 2
    assert "indexes" in capsys.readouterr().err
    assert main(["search", str(one), "--model", "tiny", "--text", "x", "--index", f"{one}.faiss"]) == 2
    assert "made by another model" in capsys.readouterr().err


@pytest.mark.slow
def test_auto_index_of_200k_rows_finds_95_percent_of_the_exact_top_10_and_flat_finds_all(tmp_path: Path) -> None:
    vectors = clustered(200_000, 64, seed=7)
    path = write_file(tmp_path / "e.npy", vectors)
    queries = queries_near(vectors, 200)
    exact = nearest(read_embeddings(path), queries, top_k=10)
    auto = build_index(path, tmp_path / "auto", progress=False)
    assert auto.kind == "hnsw"
    assert recall_at_10(auto.search(queries, top_k=10), exact) >= 0.95
    flat = build_index(path, tmp_path / "flat", kind="flat", progress=False)
    assert recall_at_10(flat.search(queries, top_k=10), exact) == 1.0
