"""`clip search`: text → image and image → image retrieval over a file written by `clip embed`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import clip_core
from clip_core.cli import main
from clip_core.embedding.file import read_embeddings, write_embeddings
from clip_core.errors import InputError
from clip_core.index import check_model, nearest, search_by_text

COLOURS = {
    "red.png": (230, 20, 20),
    "dark-red.png": (150, 10, 10),
    "green.png": (20, 200, 30),
    "blue.png": (20, 30, 220),
    "white.png": (250, 250, 250),
}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A saved `tiny` model, a folder of images, and their embeddings written by `clip embed`."""
    root = tmp_path_factory.mktemp("search")
    torch.manual_seed(99)
    model_dir = clip_core.create_model("tiny").save_pretrained(root / "model")
    folder = root / "images"
    folder.mkdir()
    for index, (name, colour) in enumerate(COLOURS.items()):
        image = Image.new("RGB", (40 + 4 * index, 36), colour)
        image.paste((index * 50, 255 - index * 40, 128), (4, 4, 14 + 3 * index, 20))
        image.save(folder / name)
    out = root / "images.safetensors"
    assert main(["embed", str(folder), "--model", str(model_dir), "-o", str(out), "--workers", "0"]) == 0
    return model_dir, folder, out


def cosine_ranking(query: torch.Tensor, rows: torch.Tensor) -> list[int]:
    return (F.normalize(rows, dim=-1) @ F.normalize(query, dim=-1)).argsort(descending=True).tolist()


def test_image_query_finds_itself_first_then_the_rows_in_cosine_order(
    library: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    model_dir, folder, out = library
    query = folder / "red.png"
    status, stdout, _ = run(capsys, "search", str(out), "--model", str(model_dir), "--image", str(query), "--json")
    assert status == 0
    [result] = json.loads(stdout)
    hits = result["hits"]
    assert result["image"] == str(query) and len(hits) == len(COLOURS)  # top-k 10 > 5 rows: all of them
    assert hits[0]["source"] == str(query) and hits[0]["score"] == pytest.approx(1, abs=1e-5)
    embeddings = read_embeddings(out)
    own = embeddings.vectors[embeddings.labels.index(str(query))]
    assert [hit["row"] for hit in hits] == cosine_ranking(own, embeddings.vectors)
    assert [hit["source"] for hit in hits] == [embeddings.labels[hit["row"]] for hit in hits]
    scores = [hit["score"] for hit in hits]
    assert scores == sorted(scores, reverse=True)


def test_text_query_ranks_rows_by_cosine_to_its_text_embedding(
    library: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    model_dir, _, out = library
    status, stdout, _ = run(
        capsys, "search", str(out), "--model", str(model_dir), "--text", "a red car", "--top-k", "3", "--json"
    )
    assert status == 0
    [result] = json.loads(stdout)
    model = clip_core.load_checkpoint(model_dir)
    with torch.no_grad():
        query = model.encode_text(clip_core.get_tokenizer(model.card)(["a red car"]))[0]
    embeddings = read_embeddings(out)
    assert result["text"] == "a red car"
    assert [hit["row"] for hit in result["hits"]] == cosine_ranking(query, embeddings.vectors)[:3]
    expected = F.normalize(embeddings.vectors, dim=-1) @ F.normalize(query, dim=-1)
    for hit in result["hits"]:
        assert hit["score"] == pytest.approx(float(expected[hit["row"]]), abs=1e-6)


def test_a_row_holding_the_texts_embedding_is_found_first_with_score_1(tmp_path: Path) -> None:
    """Known answer: an embeddings file written by hand, one row of which is the query's own text embedding."""
    torch.manual_seed(3)
    model = clip_core.create_model("tiny").eval()
    with torch.no_grad():
        text = model.encode_text(clip_core.get_tokenizer(model.card)(["a red car"]), normalize=True)
    rows = F.normalize(torch.randn(6, 16, generator=torch.Generator().manual_seed(0)), dim=-1)
    rows[4] = text[0]
    rows[1] = -text[0]  # the opposite direction: last
    write_embeddings(
        tmp_path / "hand.npy", rows, [{"source": f"img{i}.jpg"} for i in range(6)], {"format": "clip-embeddings/1"}
    )
    embeddings = read_embeddings(tmp_path / "hand.npy")
    check_model(embeddings, model)  # no model recorded: any model of the right width may search
    [hits] = search_by_text(model, embeddings, ["a red car"], top_k=6)
    assert (hits[0].row, hits[0].source) == (4, "img4.jpg") and hits[0].score == pytest.approx(1, abs=1e-6)
    assert hits[-1].row == 1 and hits[-1].score == pytest.approx(-1, abs=1e-6)


def test_table_lists_each_query_with_rank_score_and_source(
    library: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    model_dir, folder, out = library
    argv = ["search", str(out), "--model", str(model_dir), "--text", "green", "--text", "sky", "--top-k", "2"]
    status, stdout, _ = run(capsys, *argv, "--image", str(folder / "blue.png"))
    assert status == 0
    lines = stdout.splitlines()
    assert lines[0].split() == ["query", "rank", "score", "source"]
    queries = [line.split()[0] for line in lines[1:]]
    assert queries == ["green", "green", "sky", "sky", str(folder / "blue.png"), str(folder / "blue.png")]
    assert lines[5].split()[1:] == ["1", "1.0000", str(folder / "blue.png")]


def test_searching_unnormalised_embeddings_still_ranks_by_cosine(tmp_path: Path) -> None:
    torch.manual_seed(5)
    vectors = torch.randn(8, 16)
    scaled = vectors * torch.linspace(0.1, 10, 8).unsqueeze(1)
    write_embeddings(tmp_path / "raw.npy", scaled, [{"text": str(i)} for i in range(8)], {})
    embeddings = read_embeddings(tmp_path / "raw.npy")
    [hits] = nearest(embeddings, vectors[2:3], top_k=3)
    assert hits[0].row == 2 and hits[0].source == "2" and hits[0].score == pytest.approx(1, abs=1e-6)
    assert [hit.row for hit in hits] == cosine_ranking(vectors[2], vectors)[:3]


def test_another_model_of_the_same_width_is_refused_when_the_manifest_names_the_maker(
    library: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, _, out = library
    status, stdout, err = run(capsys, "search", str(out), "--model", "tiny", "--text", "x")  # seed-0 random weights
    [warning, error] = err.splitlines()
    assert status == 2 and stdout == "" and warning.startswith("clip: warning: tiny has random weights")
    assert error.startswith(f"clip: error: {out} was made by another model (")
    assert "search with the model that made it" in err
    embeddings = read_embeddings(out)
    with pytest.raises(InputError, match="was made by another model"):
        check_model(embeddings, clip_core.create_model("tiny"))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["{out}", "--model", "tiny-wide", "--text", "x"], "holds 16-wide embeddings but card 'tiny-wide' embeds 32"),
        (["{tmp}/missing.npy", "--model", "tiny", "--text", "x"], "{tmp}/missing.npy: no such embeddings file"),
        (["{tmp}/lonely.npy", "--model", "tiny", "--text", "x"], "{tmp}/lonely.npy.index.jsonl: no index beside"),
        (["{tmp}/short.npy", "--model", "tiny", "--text", "x"], "the index lists 1 rows but {tmp}/short.npy holds 2"),
        (["{tmp}/junk.safetensors", "--model", "tiny", "--text", "x"], "{tmp}/junk.safetensors: not a readable"),
        (["{out}", "--model", "tiny"], 'give a query: --text "a red car" or --image query.jpg'),
        (["{out}", "--model", "{model}", "--image", "{tmp}/none.jpg"], "{tmp}/none.jpg: No such file or directory"),
        (["{out}", "--model", "{model}", "--text", "x", "--top-k", "0"], "--top-k must be at least 1, got 0"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(
    tmp_path: Path,
    library: tuple[Path, Path, Path],
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    import numpy as np

    model_dir, _, out = library
    np.save(tmp_path / "lonely.npy", np.zeros((2, 16), np.float32))
    np.save(tmp_path / "short.npy", np.zeros((2, 16), np.float32))
    (tmp_path / "short.npy.index.jsonl").write_text('{"row": 0, "source": "a.jpg"}\n')
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 20)
    (tmp_path / "junk.safetensors.index.jsonl").write_text("")
    names = {"tmp": tmp_path, "out": out, "model": model_dir}
    status, stdout, err = run(capsys, "search", *[arg.format(**names) for arg in argv])
    assert status == 2 and stdout == ""
    [error] = [line for line in err.splitlines() if "has random weights" not in line]
    assert error.startswith("clip: error: ") and message.format(**names) in error
