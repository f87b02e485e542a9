"""Zero-shot classification: OpenAI's prompt ensembles, class probabilities, and `clip zero-shot`.

(`zero_shot_classifier`'s own recipe is specified in test_zeroshot.py.)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

import clip_core
from clip_core.cli import main
from clip_core.embedding.sources import read_pixels
from clip_core.errors import InputError
from clip_core.templates import IMAGENET_TEMPLATES, SIMPLE_TEMPLATES, get_templates
from clip_core.zeroshot import zero_shot_classifier, zero_shot_predict
from clip_test_towers.model import PatchMeanTower

LABELS = ["cat", "dog", "car"]
#: Each test image and the label the crafted model must give it (not in label order, so that order cannot pass).
ANSWERS = {"red.png": "dog", "green.png": "car", "blue.png": "cat"}
COLOURS = {"red.png": (220, 30, 20), "green.png": (10, 200, 40), "blue.png": (30, 20, 230)}


def test_the_imagenet_set_is_openais_80_templates_and_simple_its_7_selected_ones() -> None:
    assert len(IMAGENET_TEMPLATES) == 80 and len(set(IMAGENET_TEMPLATES)) == 80
    assert len(SIMPLE_TEMPLATES) == 7 and set(SIMPLE_TEMPLATES) <= set(IMAGENET_TEMPLATES)
    assert all(template.count("{}") == 1 for template in IMAGENET_TEMPLATES)
    assert IMAGENET_TEMPLATES[0] == "a bad photo of a {}." and IMAGENET_TEMPLATES[-1] == "a tattoo of the {}."
    assert get_templates("imagenet") is IMAGENET_TEMPLATES and get_templates("simple") is SIMPLE_TEMPLATES
    with pytest.raises(InputError, match="unknown template set 'fancy' \\(known: simple, imagenet\\)"):
        get_templates("fancy")


def test_the_template_sets_are_the_ones_open_clip_ships() -> None:
    metadata = pytest.importorskip("open_clip.zero_shot_metadata")
    assert [t("{}") for t in metadata.OPENAI_IMAGENET_TEMPLATES] == list(IMAGENET_TEMPLATES)
    assert [t("{}") for t in metadata.SIMPLE_IMAGENET_TEMPLATES] == list(SIMPLE_TEMPLATES)


@pytest.fixture(scope="module")
def model() -> clip_core.ClipModel:
    torch.manual_seed(7)
    return clip_core.create_model("tiny").eval()


def test_predict_gives_a_softmax_over_scaled_cosine_similarities(model: clip_core.ClipModel) -> None:
    classifier = zero_shot_classifier(model, clip_core.get_tokenizer(model.card), LABELS, ["a photo of a {}."])
    pixels = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    probabilities = zero_shot_predict(model, pixels, classifier)
    with torch.no_grad():
        cosine = model.encode_image(pixels, normalize=True) @ classifier.T
    expected = (model.logit_scale.exp() * cosine).softmax(dim=-1)
    torch.testing.assert_close(probabilities, expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(probabilities.sum(dim=-1), torch.ones(4))
    with pytest.raises(InputError, match=r"classifier must be \[num_classes, 16\] for card 'tiny'"):
        zero_shot_predict(model, pixels, classifier[:, :8])


def test_models_with_a_logit_bias_get_a_sigmoid_per_label(model: clip_core.ClipModel) -> None:
    """SigLIP-style cards (a logit bias) judge each label on its own: sigmoid(scale * cosine + bias) by default;
    `activation` forces either, and the ranking is the same."""
    card = {**model.card.model_dump(), "name": "tiny-bias", "init_logit_bias": -4.0}
    biased = clip_core.create_model(card).eval()
    biased.load_state_dict(model.state_dict(), strict=False)  # the same towers and scale, plus a bias
    classifier = zero_shot_classifier(biased, clip_core.get_tokenizer(biased.card), LABELS, ["a photo of a {}."])
    pixels = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = biased.logit_scale.exp() * biased.encode_image(pixels, normalize=True) @ classifier.T - 4.0
    sigmoid = zero_shot_predict(biased, pixels, classifier)
    torch.testing.assert_close(sigmoid, logits.sigmoid(), rtol=0, atol=1e-6)
    assert not torch.allclose(sigmoid.sum(dim=-1), torch.ones(4), atol=1e-2)
    softmax = zero_shot_predict(biased, pixels, classifier, activation="softmax")
    torch.testing.assert_close(softmax, logits.softmax(dim=-1), rtol=0, atol=1e-6)
    assert torch.equal(softmax.argsort(dim=-1), sigmoid.argsort(dim=-1))
    torch.testing.assert_close(  # and a model without a bias can be asked for sigmoids too
        zero_shot_predict(model, pixels, classifier, activation="sigmoid"),
        (model.logit_scale.exp() * model.encode_image(pixels, normalize=True).detach() @ classifier.T).sigmoid(),
        rtol=0,
        atol=1e-6,
    )
    with pytest.raises(InputError, match="activation must be 'auto', 'softmax' or 'sigmoid', got 'relu'"):
        zero_shot_predict(model, pixels, classifier, activation="relu")  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def crafted(tmp_path_factory: pytest.TempPathFactory, model: clip_core.ClipModel) -> tuple[Path, Path]:
    """A saved model whose image tower maps each test image exactly onto the class row of its answer.

    The image tower of the `tiny` card ends with a linear projection of per-image features; its weight is solved
    (least squares, exact for 3 images in 24 dimensions) so that image i's embedding is the classifier row of
    ``ANSWERS[i]``. So the answer is known by construction, not by running the code under test.
    """
    folder = tmp_path_factory.mktemp("zero-shot")
    for name, colour in COLOURS.items():
        image = Image.new("RGB", (48, 40), colour)
        image.paste((255, 255, 255), (5, 5, 20, 15))  # not a flat colour: the features differ in more directions
        image.save(folder / name)
    crafted = clip_core.create_model("tiny").eval()
    crafted.load_state_dict(model.state_dict())
    classifier = zero_shot_classifier(crafted, clip_core.get_tokenizer(crafted.card), LABELS, SIMPLE_TEMPLATES)
    preprocess = clip_core.get_preprocess(crafted.card)
    pixels = torch.stack([read_pixels(folder / name, preprocess) for name in ANSWERS])
    visual = crafted.visual
    assert isinstance(visual, PatchMeanTower)
    with torch.no_grad():
        features = visual.norm(visual.patch(pixels).flatten(2).mean(-1)).double()  # [3, 24]
        targets = classifier[[LABELS.index(label) for label in ANSWERS.values()]].double()  # [3, 16]
        projection = torch.linalg.lstsq(features, targets).solution.T  # [16, 24]
        visual.proj.weight.copy_(projection.float())
        embeds = crafted.encode_image(pixels, normalize=True)
    torch.testing.assert_close(embeds, targets.float(), rtol=0, atol=1e-4)
    return crafted.save_pretrained(folder / "model"), folder


def zero_shot(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(["zero-shot", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_json_gives_the_known_top_label_and_probabilities_summing_to_1(
    crafted: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    model_dir, folder = crafted
    images = [str(folder / name) for name in ANSWERS]
    status, out, err = zero_shot(capsys, *images, "--model", str(model_dir), "--labels", *LABELS, "--json")
    assert status == 0 and err == ""
    report = json.loads(out)
    assert report["skipped"] == []
    assert [result["image"] for result in report["results"]] == images
    for result, answer in zip(report["results"], ANSWERS.values(), strict=True):
        predictions = result["predictions"]
        assert predictions[0]["label"] == answer and len(predictions) == 3
        assert sorted(p["label"] for p in predictions) == sorted(LABELS)
        assert sum(p["probability"] for p in predictions) == pytest.approx(1, abs=1e-6)
        assert predictions == sorted(predictions, key=lambda p: -p["probability"])


def test_activation_sigmoid_scores_each_label_alone(
    crafted: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    model_dir, folder = crafted
    images = [str(folder / name) for name in ANSWERS]
    argv = [*images, "--model", str(model_dir), "--labels", *LABELS, "--json"]
    _, out, _ = zero_shot(capsys, *argv, "--activation", "sigmoid")
    model = clip_core.load_checkpoint(model_dir)
    classifier = zero_shot_classifier(model, clip_core.get_tokenizer(model.card), LABELS, SIMPLE_TEMPLATES)
    for result, answer in zip(json.loads(out)["results"], ANSWERS.values(), strict=True):
        pixels = read_pixels(result["image"], clip_core.get_preprocess(model.card)).unsqueeze(0)
        expected = zero_shot_predict(model, pixels, classifier, activation="sigmoid")[0]
        got = {p["label"]: p["probability"] for p in result["predictions"]}
        assert got == pytest.approx({label: float(p) for label, p in zip(LABELS, expected, strict=True)}, abs=1e-6)
        assert result["predictions"][0]["label"] == answer and sum(got.values()) > 1.5


def test_table_is_aligned_with_top_k_rows_per_image(
    crafted: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    model_dir, folder = crafted
    (folder / "labels.txt").write_text("cat\n\ndog\ncar\n")
    status, out, _ = zero_shot(
        capsys, str(folder), "--model", str(model_dir), "--labels-file", str(folder / "labels.txt"), "--top-k", "2"
    )
    assert status == 0
    lines = out.splitlines()
    assert lines[0].split() == ["image", "rank", "label", "probability"]
    rows = [line.split() for line in lines[1:]]
    assert len(rows) == 2 * len(ANSWERS)  # the folder's three images, sorted by path
    by_image = {Path(row[0]).name: row[2] for row in rows if row[1] == "1"}
    assert by_image == ANSWERS
    starts = [lines[0].index(column) for column in ("rank", "label", "probability")]
    for line in lines[1:]:
        assert all(line[start - 2 : start] == "  " and line[start] != " " for start in starts)


def test_own_templates_give_the_library_functions_probabilities(
    crafted: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    model_dir, folder = crafted
    templates = ["a sketch of a {}.", "a {} in the snow."]
    argv = [str(folder / "red.png"), "--model", str(model_dir), "--labels", *LABELS, "--json"]
    status, out, _ = zero_shot(capsys, *argv, "--template", templates[0], "--template", templates[1])
    assert status == 0
    model = clip_core.load_checkpoint(model_dir)
    classifier = zero_shot_classifier(model, clip_core.get_tokenizer(model.card), LABELS, templates)
    pixels = read_pixels(folder / "red.png", clip_core.get_preprocess(model.card)).unsqueeze(0)
    expected = zero_shot_predict(model, pixels, classifier)[0]
    got = {p["label"]: p["probability"] for p in json.loads(out)["results"][0]["predictions"]}
    assert got == pytest.approx({label: float(p) for label, p in zip(LABELS, expected, strict=True)}, abs=1e-6)
    _, imagenet, _ = zero_shot(capsys, *argv, "--templates", "imagenet")
    assert json.loads(imagenet) != json.loads(out)  # another ensemble, other probabilities


def test_images_may_follow_the_labels(crafted: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """`--labels cat dog car red.png green.png`: the trailing words that name files are the images; `--` also ends
    the labels."""
    model_dir, folder = crafted
    images = [str(folder / "red.png"), str(folder / "green.png")]
    for argv in (["--labels", *LABELS, *images], ["--labels", *LABELS, "--", *images]):
        status, out, _ = zero_shot(capsys, "--model", str(model_dir), "--json", "--top-k", "1", *argv)
        assert status == 0
        results = json.loads(out)["results"]
        assert [(r["image"], r["predictions"][0]["label"]) for r in results] == [
            (images[0], "dog"),
            (images[1], "car"),
        ]


def test_unreadable_images_are_skipped_and_reported(
    crafted: tuple[Path, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    model_dir, folder = crafted
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    status, out, err = zero_shot(
        capsys, str(tmp_path / "broken.png"), str(folder / "blue.png"), "--model", str(model_dir), "--labels", *LABELS
    )
    assert status == 0 and f"{folder / 'blue.png'}  1     cat" in out
    assert err == f"clip: skipped {tmp_path / 'broken.png'}: not an image file Pillow can read\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["{img}", "--model", "tiny"], "name the labels: --labels cat dog ... or --labels-file FILE"),
        (["--model", "tiny", "--labels", "a", "b"], "name the images to classify (after --labels, end the labels with"),
        (["{img}", "--model", "tiny", "--labels", "a", "--template", "no slot"], "template 'no slot' has no '{{}}'"),
        (["{tmp}/missing.png", "--model", "tiny", "--labels", "a"], "{tmp}/missing.png: no such file or folder"),
        (["{img}", "--model", "nope", "--labels", "a"], "unknown card 'nope'"),
        (["{img}", "--model", "tiny", "--labels", "a", "--top-k", "0"], "--top-k must be at least 1, got 0"),
        (["{img}", "--model", "tiny", "--labels-file", "{tmp}/none.txt"], "{tmp}/none.txt: no such file"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    Image.new("RGB", (8, 8)).save(tmp_path / "one.png")
    args = [arg.format(tmp=tmp_path, img=tmp_path / "one.png") for arg in argv]
    status, out, err = zero_shot(capsys, *args)
    assert status == 2 and out == ""
    [error] = [line for line in err.splitlines() if "has random weights" not in line]
    assert error.startswith("clip: error: ") and message.format(tmp=tmp_path) in error


def test_nothing_readable_is_an_error_in_one_line(
    crafted: tuple[Path, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    model_dir, _ = crafted
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    (tmp_path / "empty.jpg").write_bytes(b"")
    status, out, err = zero_shot(capsys, str(tmp_path), "--model", str(model_dir), "--labels", *LABELS)
    assert status == 2 and out == ""
    assert err == (
        f"clip: error: none of the 2 images could be read (the first: {tmp_path / 'broken.png'}: not an image file "
        "Pillow can read)\n"
    )
