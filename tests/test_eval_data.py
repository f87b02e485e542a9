"""Evaluation data sets: the layouts `clip eval` reads, what a malformed one gives (a clear error or a reported skip,
never a silently different number), the metrics' formulas on hand-made cases, and the command's outputs."""

from __future__ import annotations

import importlib
import io
import json
import math
import tarfile
from pathlib import Path

import pytest
import torch
from PIL import Image

import clip_core
from clip_core.cli import main
from clip_core.errors import InputError
from clip_core.eval import evaluate, load_data, write_wds
from clip_core.eval.metrics import classification_metrics, retrieval_metrics
from clip_core.templates import IMAGENET_TEMPLATES

COLOURS = {"red": (220, 30, 20), "green": (10, 200, 40), "blue": (30, 20, 230)}


def picture(colour: str, shade: int = 0) -> Image.Image:
    r, g, b = COLOURS[colour]
    return Image.new("RGB", (20, 20), (r, g, min(255, b + shade)))


@pytest.fixture(scope="module")
def model() -> clip_core.ClipModel:
    torch.manual_seed(7)
    return clip_core.create_model("tiny").eval()


def test_metrics_follow_clip_benchmarks_definitions() -> None:
    logits = torch.tensor([[3.0, 2, 1], [1, 3, 2], [1, 2, 3], [3, 2, 1]])
    targets = torch.tensor([0, 0, 2, 1])  # right, wrong (2nd), right, wrong (2nd)
    metrics = classification_metrics(logits, targets)
    assert metrics["acc1"] == 0.5 and math.isnan(metrics["acc5"])  # acc5 needs 5 classes
    assert metrics["mean_per_class_recall"] == pytest.approx((0.5 + 0 + 1) / 3)
    # two images; image 0 has texts 0 and 1, image 1 has text 2
    images = torch.eye(2)
    texts = torch.tensor([[1.0, 0], [0.6, 0.8], [0, 1]])
    recall = retrieval_metrics(images, texts, [0, 0, 1], recall_k=(1, 2))
    assert recall["image_retrieval_recall@1"] == pytest.approx(2 / 3)  # text 1 finds image 1 first
    assert recall["text_retrieval_recall@1"] == 1.0  # each image's best text is one of its own
    assert recall["image_retrieval_recall@2"] == 1.0
    with pytest.raises(InputError, match="recall@3 needs at least 3 images"):
        retrieval_metrics(images, texts, [0, 0, 1], recall_k=(3,))


def test_an_image_folder_reads_classes_from_sub_folders_in_sorted_order(tmp_path: Path) -> None:
    for colour in ("red", "blue"):
        (tmp_path / "test" / colour).mkdir(parents=True)
        for i in range(2):
            picture(colour, i).save(tmp_path / "test" / colour / f"{i}.png")
    data = load_data(tmp_path)
    assert data.kind == "classification" and data.classnames == ["blue", "red"] and data.labels == [0, 0, 1, 1]
    assert data.templates == list(IMAGENET_TEMPLATES)  # no templates file: OpenAI's 80
    (tmp_path / "names.txt").write_text("a blue thing\na red thing\n")
    (tmp_path / "templates.txt").write_text("a picture of {c}\n")
    data = load_data(tmp_path, classnames=tmp_path / "names.txt", templates=tmp_path / "templates.txt")
    assert data.classnames == ["a blue thing", "a red thing"] and data.templates == ["a picture of {c}"]


def test_caption_lists_group_the_captions_of_each_image(tmp_path: Path) -> None:
    for colour in COLOURS:
        picture(colour).save(tmp_path / f"{colour}.png")
    (tmp_path / "pairs.csv").write_text("image,caption\nred.png,a red square\nblue.png,blue\nred.png,crimson\n")
    data = load_data(tmp_path / "pairs.csv")
    assert data.kind == "retrieval" and [Path(str(p)).name for p in data.images] == ["red.png", "blue.png"]
    assert data.captions == [["a red square", "crimson"], ["blue"]]
    lines = [{"image": "green.png", "captions": ["green", "a green square"]}, {"image": "red.png", "caption": "red"}]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert load_data(tmp_path / "pairs.jsonl").captions == [["green", "a green square"], ["red"]]
    (tmp_path / "bad.jsonl").write_text('{"picture": "red.png"}\n')
    with pytest.raises(InputError, match=r"bad.jsonl:1: expected \{\"image\""):
        load_data(tmp_path / "bad.jsonl")


@pytest.mark.parametrize(
    ("count", "shard_size", "sizes"),
    [(10, 1000, [2, 3, 2, 3]), (2, 1000, [1, 1]), (0, 1000, [0]), (9, 2, [1, 2, 2, 2, 2]), (2500, 1000, [625] * 4)],
)
def test_wds_samples_are_spread_in_order_over_at_least_four_shards(
    tmp_path: Path, count: int, shard_size: int, sizes: list[int]
) -> None:
    samples = [(b"not decoded here", index % 3) for index in range(count)]
    root = write_wds(tmp_path / "set", samples, classnames=["a", "b", "c"], shard_size=shard_size)
    assert (root / "test" / "nshards.txt").read_text() == f"{len(sizes)}\n"
    written = []
    for number in range(len(sizes)):
        with tarfile.open(root / "test" / f"{number}.tar") as shard:
            written.append(len(shard.getnames()) // 2)
    assert written == sizes
    if count:
        assert load_data(root).labels == [label for _, label in samples]
    with pytest.raises(InputError, match="shard_size and min_shards must be at least 1"):
        write_wds(tmp_path / "bad", samples, shard_size=0)


def test_malformed_wds_data_sets_give_clear_errors(tmp_path: Path) -> None:
    samples = [(picture("red"), 0), (picture("blue"), 3)]
    root = write_wds(tmp_path / "set", samples, classnames=["red", "blue"], min_shards=1)
    with pytest.raises(InputError, match=r"s0000001.png: class index 3 is out of range for 2 class names"):
        load_data(root)
    (root / "classnames.txt").unlink()
    with pytest.raises(InputError, match=r"no classnames.txt \(give --classnames FILE\)"):
        load_data(root)
    (root / "test" / "nshards.txt").write_text("2\n")
    with pytest.raises(InputError, match=r"1.tar: no such shard \(nshards.txt names it\)"):
        load_data(root, classnames=__file__)
    with tarfile.open(root / "test" / "0.tar", "w") as archive:  # a sample without its label
        info = tarfile.TarInfo("x.png")
        data = io.BytesIO()
        picture("red").save(data, format="PNG")
        info.size = len(data.getvalue())
        archive.addfile(info, io.BytesIO(data.getvalue()))
    (root / "test" / "nshards.txt").write_text("1\n")
    (root / "classnames.txt").write_text("red\nblue\n")
    with pytest.raises(InputError, match=r"0\.tar: sample 'x' has no \.cls file"):
        load_data(root)
    with pytest.raises(InputError, match=r"not a data set: no test/nshards\.txt"):
        load_data(tmp_path / "set" / "test")


def test_the_linear_probe_refuses_a_data_set_without_its_training_split(
    tmp_path: Path, model: clip_core.ClipModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a ``train`` split the probe would have trained on the folder it is scored on (an image folder without
    split folders is read whole); it is refused before an image is embedded, for both layouts."""
    for colour in ("red", "blue"):
        (tmp_path / "folder" / colour).mkdir(parents=True)
        picture(colour).save(tmp_path / "folder" / colour / "0.png")
    wds = write_wds(tmp_path / "wds", [(picture("red"), 0), (picture("blue"), 1)], classnames=["red", "blue"])
    embedded: list[object] = []
    module = importlib.import_module("clip_core.eval.evaluate")  # the package's name `evaluate` is the function
    monkeypatch.setattr(module, "image_features", lambda *args, **kwargs: embedded.append(args))
    for root in (tmp_path / "folder", wds):
        with pytest.raises(InputError, match=r"no 'train' split for the linear probe \(a train/ folder of class sub"):
            evaluate(model, root, "linear_probe")
    with pytest.raises(InputError, match=r"no 'held' split for the linear probe"):
        evaluate(model, wds, "linear_probe", train="test", val="held")
    assert embedded == []


def test_unreadable_images_are_skipped_and_reported(tmp_path: Path, model: clip_core.ClipModel) -> None:
    for colour in ("red", "blue"):
        (tmp_path / colour).mkdir()
        picture(colour).save(tmp_path / colour / "good.png")
    (tmp_path / "red" / "broken.png").write_bytes(b"not a png")
    result = evaluate(model, tmp_path, templates=None, workers=0)
    assert result.images == 2 and [Path(s.source).name for s in result.skipped] == ["broken.png"]
    assert "not an image file" in result.skipped[0].error
    assert sum(map(sum, result.confusion)) == 2


def test_clip_eval_prints_a_table_writes_json_and_plots(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    samples = [(picture(colour, shade), [f"a {colour} square", colour]) for colour in COLOURS for shade in (0, 9)]
    root = write_wds(tmp_path / "pairs", samples)
    out = tmp_path / "result.json"
    args = ["eval", "--model", "tiny", "--data", str(root), "--recall-k", "1", "2", "--no-progress", "--workers", "0"]
    assert main([*args, "--output", str(out), "--plots", str(tmp_path / "plots")]) == 0
    printed = capsys.readouterr().out
    assert "zeroshot_retrieval of tiny on pairs: 6 images, 12 texts" in printed
    assert "image_retrieval_recall@2" in printed and "images/s" in printed
    report = json.loads(out.read_text())
    assert list(report)[:5] == ["dataset", "model", "pretrained", "task", "metrics"]
    assert set(report["metrics"]) == {f"{way}_retrieval_recall@{k}" for way in ("image", "text") for k in (1, 2)}
    assert report["fingerprint"].startswith("sha256:") and report["card"] == "tiny"
    with Image.open(tmp_path / "plots" / "recall_at_k.png") as image:
        assert image.format == "PNG"
    assert main([*args[:-4], "--task", "linear_probe"]) == 2
    assert "task linear_probe needs a classification data set" in capsys.readouterr().err
