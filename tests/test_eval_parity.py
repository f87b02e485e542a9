"""`clip eval` gives CLIP_benchmark's numbers: the clip-benchmark package's own evaluators, run on the same random
weights loaded in open_clip and on the same data sets in its `wds` layout, report what `evaluate` reports.

(CLIP_benchmark's `accuracy` calls `float()` on a one-element array, which numpy >= 2.4 refuses; where it is needed,
the same formula is used with `.item()`.)
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import torch

import clip_core
from clip_core.demo.shapes import generate
from clip_core.eval import ProbeSettings, evaluate, write_wds

open_clip = pytest.importorskip("open_clip")
builder = pytest.importorskip("clip_benchmark.datasets.builder")
from clip_benchmark.metrics import linear_probe as cb_linear_probe  # noqa: E402
from clip_benchmark.metrics import zeroshot_classification as cb_classification  # noqa: E402
from clip_benchmark.metrics import zeroshot_retrieval as cb_retrieval  # noqa: E402
from sklearn.metrics import balanced_accuracy_score  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore:WebDataset\\(shardshuffle=:UserWarning"),
    pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true:UserWarning"),
    # webdataset leaves the shards it streams from open until they are collected
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

SIZE = 32
#: Ten colour-shape classes of the demo's generated pictures.
COMBOS = [(colour, shape) for colour in ("red", "blue") for shape in ("circle", "square", "triangle", "star", "cross")]
CLASSNAMES = [f"{colour} {shape}" for colour, shape in COMBOS]
TEMPLATES = ["a photo of a {c}.", "a drawing of a {c}", "{c}"]


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    """A small random open_clip ViT CLIP and its state dict saved as a .pt file."""
    torch.manual_seed(0)
    vision = {"image_size": SIZE, "patch_size": 8, "width": 64, "layers": 2}
    reference = open_clip.model.CLIP(32, vision, {"width": 64, "heads": 1, "layers": 2}).eval()
    path = tmp_path_factory.mktemp("weights") / "model.pt"
    torch.save(reference.state_dict(), path)
    return reference, path


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A classification data set (test, train and val splits) and a retrieval one, in CLIP_benchmark's layout."""
    root = tmp_path_factory.mktemp("data")
    rng = random.Random(0)
    for split, count in (("test", 60), ("train", 80), ("val", 40)):
        pictures = generate(count, COMBOS, 40, rng)
        samples = [(image, CLASSNAMES.index(what.classname)) for what, image in pictures]
        write_wds(root / "shapes", samples, split=split, classnames=CLASSNAMES, templates=TEMPLATES, shard_size=25)
    pictures = generate(50, COMBOS, 40, rng)
    # every caption distinct: identical texts tie exactly, and exact ties may be broken either way
    captions = [
        (image, [f"{what.caption}, number {i}", f"{what.random_caption(rng)} ({i})"][: 1 + i % 2])
        for i, (what, image) in enumerate(pictures)
    ]
    write_wds(root / "captions", captions, shard_size=20)
    return {"classification": root / "shapes", "retrieval": root / "captions"}


def reference_loader(root: Path, split: str = "test") -> Any:
    """CLIP_benchmark's own reader of the data set, with open_clip's transform, batched as its CLI batches."""
    transform = open_clip.image_transform(SIZE, is_train=False)
    dataset = builder.build_wds_dataset(root.name, transform, split=split, data_dir=str(root))
    return dataset, torch.utils.data.DataLoader(dataset.batched(16), batch_size=None, shuffle=False)


def accuracy(logits: torch.Tensor, target: torch.Tensor, k: int) -> float:
    """CLIP_benchmark's `accuracy`, with `.item()` for numpy >= 2.4."""
    predicted = logits.topk(k, 1, True, True)[1].t()
    correct = predicted.eq(target.view(1, -1).expand_as(predicted))
    return float(correct[:k].reshape(-1).float().sum(0, keepdim=True).item()) / len(target)


def test_zero_shot_classification_equals_clip_benchmarks(weights: tuple[Any, Path], data: dict[str, Path]) -> None:
    reference, path = weights
    result = evaluate(clip_core.load_checkpoint(path), data["classification"], batch_size=7, workers=0)

    dataset, loader = reference_loader(data["classification"])
    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    assert dataset.classes == CLASSNAMES and dataset.templates == TEMPLATES
    classifier = cb_classification.zero_shot_classifier(reference, tokenizer, CLASSNAMES, TEMPLATES, "cpu", amp=False)
    logits, target = cb_classification.run_classification(reference, classifier, loader, "cpu", amp=False)
    expected = {
        "acc1": accuracy(logits, target, 1),
        "acc5": accuracy(logits, target, 5),
        "mean_per_class_recall": balanced_accuracy_score(target, logits.argmax(axis=1)),
    }
    assert result.task == "zeroshot_classification" and result.images == 60
    assert result.metrics["acc1"] == expected["acc1"] and result.metrics["acc5"] == expected["acc5"]
    assert result.metrics["mean_per_class_recall"] == pytest.approx(expected["mean_per_class_recall"], rel=1e-12)
    assert 0 < expected["acc5"] < 1  # the numbers compared are not trivially 0 or 1
    confusion = torch.tensor(result.confusion)
    assert confusion.sum() == 60 and confusion.sum(dim=1).tolist() == torch.bincount(target, minlength=10).tolist()


def test_zero_shot_retrieval_equals_clip_benchmarks(weights: tuple[Any, Path], data: dict[str, Path]) -> None:
    reference, path = weights
    result = evaluate(clip_core.load_checkpoint(path), data["retrieval"], recall_k=(1, 5, 10), workers=2)
    _, loader = reference_loader(data["retrieval"])
    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    expected = cb_retrieval.evaluate(reference, loader, tokenizer, "cpu", amp=False, recall_k_list=[1, 5, 10])
    assert result.task == "zeroshot_retrieval" and (result.images, result.texts) == (50, 75)
    assert result.metrics == expected
    assert 0 < expected["image_retrieval_recall@10"] < 1 and 0 < expected["text_retrieval_recall@10"] < 1
    assert result.recall_curves["image_retrieval"][9] == expected["image_retrieval_recall@10"]


@pytest.mark.filterwarnings("ignore:This DataLoader will create 4 worker processes:UserWarning")
def test_a_small_data_set_is_read_whole_by_clip_benchmarks_four_workers(tmp_path: Path) -> None:
    """CLIP_benchmark's loader gives each of its workers (4 by default) whole shards and fails on a worker with none;
    ``write_wds`` writes at least 4 shards, so ten samples are all read."""
    samples = [(image, CLASSNAMES.index(what.classname)) for what, image in generate(10, COMBOS, 40, random.Random(1))]
    root = write_wds(tmp_path / "few", samples, classnames=CLASSNAMES, templates=TEMPLATES)
    dataset, _ = reference_loader(root)
    loader = torch.utils.data.DataLoader(dataset.batched(4), batch_size=None, num_workers=4)
    labels = sorted(int(label) for _, batch in loader for label in batch)
    assert labels == sorted(label for _, label in samples)


@pytest.mark.slow  # trains CLIP_benchmark's probe through its weight-decay search: once, in the parity session
def test_the_linear_probe_equals_clip_benchmarks(
    weights: tuple[Any, Path], data: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """CLIP_benchmark's probe is written for CUDA only (`.cuda()` calls): they are made no-ops to run its training,
    weight-decay search and inference on the CPU, on open_clip's features of the same splits."""
    reference, path = weights
    settings = ProbeSettings(lr=0.1, epochs=4, batch_size=16, seed=3)
    result = evaluate(
        clip_core.load_checkpoint(path), data["classification"], "linear_probe", val="val", probe=settings
    )

    monkeypatch.setattr(torch.Tensor, "cuda", lambda self, *a, **k: self)
    monkeypatch.setattr(torch.nn.Module, "cuda", lambda self, *a, **k: self)
    monkeypatch.setattr(cb_linear_probe, "accuracy", lambda logits, target, topk: [accuracy(logits, target, 1)])
    featurizer = cb_linear_probe.Featurizer(reference)
    features = {}
    for split in ("train", "val", "test"):
        _, loader = reference_loader(data["classification"], split)
        with torch.no_grad():
            batches = [(featurizer(images), target) for images, target in loader]
        features[split] = (torch.cat([f for f, _ in batches]), torch.cat([t for _, t in batches]))

    def loader_of(*splits: str) -> torch.utils.data.DataLoader[Any]:
        x = torch.cat([features[s][0] for s in splits])
        y = torch.cat([features[s][1] for s in splits])
        dataset = cb_linear_probe.FeatureDataset(x, y)
        return torch.utils.data.DataLoader(dataset, batch_size=settings.batch_size, shuffle=True)

    args = (32, 10, settings.lr, settings.epochs, False, "cpu", False, settings.seed)
    grid = cb_linear_probe.np.logspace(-6, 2, num=97).tolist()
    first = [i for i, value in enumerate(grid) if value in cb_linear_probe.np.logspace(-6, 2, num=7).tolist()]
    peak = cb_linear_probe.find_peak(grid, first, loader_of("train"), loader_of("val"), *args)
    span = 8
    while span > 0:
        around = [max(peak - span, 0), peak, min(peak + span, len(grid) - 1)]
        peak = cb_linear_probe.find_peak(grid, around, loader_of("train"), loader_of("val"), *args)
        span //= 2
    probe = cb_linear_probe.train(
        loader_of("train", "val"), 32, 10, grid[peak], settings.lr, settings.epochs, False, "cpu", settings.seed
    )
    logits, target = cb_linear_probe.infer(probe, loader_of("test"), False, "cpu")
    assert result.metrics["weight_decay"] == grid[peak]
    assert result.metrics["lp_acc1"] == accuracy(logits, target, 1)
    assert result.metrics["lp_acc5"] == accuracy(logits, target, 5)
    expected_recall = balanced_accuracy_score(target, logits.argmax(axis=1))
    assert result.metrics["lp_mean_per_class_recall"] == pytest.approx(expected_recall, rel=1e-12)
    assert result.metrics["epochs"] == 4 and result.metrics["seed"] == 3
