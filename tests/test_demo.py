"""`clip demo`: a tiny CLIP trained from scratch on generated shapes. The tests run the quick variant (a smoke
test of every stage); the full demo, with its accuracy, is run by `nox -s demo`."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from PIL import Image

import clip_core
from clip_core import registry
from clip_core.cli import main
from clip_core.demo.evaluation import CLASSNAMES, score
from clip_core.demo.run import QUICK, demo_card, demo_data
from clip_core.demo.shapes import COLOURS, SHAPES, UNSEEN, Shape, combinations, draw


def test_quick_demo_writes_the_model_pictures_and_metrics_and_the_model_reloads_with_its_scores(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo"
    status = main(["demo", "--quick", "--verify", "--out", str(out), "--seed", "3"])
    printed, err = capsys.readouterr()
    assert status == 0, err
    for line in (
        "zero-shot top-1",
        "recall@1",
        f"model:       {out / 'model'}",
        f"loss curve:  {out / 'loss.png'}",
        f"similarity:  {out / 'similarity.png'}",
        f"metrics:     {out / 'metrics.json'}",
        "verified",
    ):
        assert line in printed
    assert sorted(p.name for p in (out / "model").iterdir()) == ["card.json", "model.safetensors"]
    for picture in ("loss.png", "similarity.png"):
        with Image.open(out / picture) as image:
            assert image.format == "PNG" and image.width > 300 and image.height > 300
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == QUICK.steps and metrics["seed"] == 3 and metrics["verified_after_reload"] is True
    assert metrics["zero_shot"]["classes"] == CLASSNAMES and len(CLASSNAMES) == 30
    model = clip_core.load_checkpoint(out / "model")
    card = model.card
    assert card == demo_card()
    held_out = demo_data(QUICK, 3, card.preprocess.image_size).held_out(clip_core.get_preprocess(card))
    again = score(model, clip_core.get_tokenizer(card), *held_out)
    assert again.zero_shot_top1_seen == metrics["zero_shot"]["top1_seen"]
    assert again.zero_shot_top1_unseen == metrics["zero_shot"]["top1_unseen"]
    assert again.recall_at_1_seen == metrics["text_to_image_recall_at_1"]["seen"]
    assert again.recall_at_1_unseen == metrics["text_to_image_recall_at_1"]["unseen"]

    # `clip eval` on the held-out sets the demo writes reproduces its zero-shot accuracy
    for which, top1 in (("seen", "top1_seen"), ("unseen", "top1_unseen")):
        report = tmp_path / f"{which}.json"
        args = ["eval", "--model", str(out / "model"), "--data", str(out / f"heldout-{which}"), "--no-progress"]
        assert main([*args, "--workers", "0", "--output", str(report)]) == 0
        evaluated = json.loads(report.read_text())
        assert evaluated["task"] == "zeroshot_classification" and evaluated["dataset"] == f"heldout-{which}"
        assert evaluated["metrics"]["acc1"] == metrics["zero_shot"][top1]
        assert evaluated["images"] == (QUICK.seen_test_images if which == "seen" else QUICK.unseen_test_images)


def test_demo_without_the_vit_plugin_names_the_package_to_install(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(registry.DISABLE_ENV, "vit")
    registry.reload()
    try:
        status = main(["demo", "--quick", "--out", str(tmp_path / "demo")])
    finally:
        monkeypatch.delenv(registry.DISABLE_ENV)
        registry.reload()
    _, err = capsys.readouterr()
    assert status == 2 and err.count("\n") == 1
    assert "but 'vit' is not installed: pip install clip-encoders-vit" in err
    assert not (tmp_path / "demo").exists()


def test_demo_data_is_determined_by_the_seed_and_keeps_unseen_combinations_out_of_training() -> None:
    first, again, other = demo_data(QUICK, 0, 32), demo_data(QUICK, 0, 32), demo_data(QUICK, 1, 32)
    assert first.captions == again.captions and first.captions != other.captions
    assert all(a.tobytes() == b.tobytes() for (_, a), (_, b) in zip(first.train, again.train, strict=True))
    assert not any((what.colour, what.shape) in UNSEEN for what, _ in [*first.train, *first.seen])
    assert all((what.colour, what.shape) in UNSEEN for what, _ in first.unseen)
    assert len(combinations(seen=True)) == 25 and len(UNSEEN) == 5
    assert {c for c, _ in UNSEEN} < set(COLOURS) and {s for _, s in UNSEEN} == set(SHAPES)
    for (what, _), caption in zip(first.train, first.captions, strict=True):
        assert caption.endswith(f"{what.colour} {what.shape}") and caption.startswith("a ")


@pytest.mark.parametrize("shape", SHAPES)
def test_every_shape_is_drawn_in_its_colour_on_the_plain_background(shape: str) -> None:
    image = draw(Shape("blue", shape, "large"), 32, random.Random(0))
    pixels = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8).view(-1, 3).float()
    background = (pixels - torch.tensor([235.0, 235.0, 235.0])).abs().sum(1) < 4
    blue = (pixels - torch.tensor(COLOURS["blue"], dtype=torch.float32)).abs().max(1).values < 40
    assert image.size == (32, 32) and background.float().mean() > 0.2 and blue.float().mean() > 0.1
