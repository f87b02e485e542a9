"""``clip demo``: train a tiny CLIP from scratch on generated shapes, score it, save it and draw it.

Nothing is downloaded. The card (``card.json`` beside this module) pairs a small ``vit`` image tower with a
small ``text-transformer`` text tower and the ``clip-bpe`` tokenizer, so it needs the plugins
``clip-encoders-vit`` and ``clip-encoders-text``. The run is deterministic for a seed (on one machine and
torch version): the data, the initialisation and the order of the batches all derive from it.
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import asdict, dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from clip_core import registry
from clip_core.cards import ModelCard
from clip_core.catalog import get_card
from clip_core.checkpoints import load_checkpoint
from clip_core.demo.evaluation import CLASSNAMES, TEMPLATES, Scores, score
from clip_core.demo.pictures import draw_loss_curve, draw_similarity_matrix
from clip_core.demo.shapes import UNSEEN, Shape, combinations, generate
from clip_core.errors import CheckpointError, PluginError
from clip_core.preprocess import ImagePreprocess, get_preprocess
from clip_core.tokenizer import get_tokenizer
from clip_core.training import TensorPairs, TrainConfig, Trainer

__all__ = ["FULL", "QUICK", "DemoData", "DemoResult", "DemoSettings", "demo_card", "demo_data", "run_demo"]


@dataclass(frozen=True)
class DemoSettings:
    """How big the demo's data and training are."""

    train_images: int
    seen_test_images: int
    unseen_test_images: int
    steps: int
    batch_size: int
    lr: float
    warmup_steps: int
    weight_decay: float


#: The full demo: about 1.5 minutes of training on two CPU cores.
FULL = DemoSettings(
    train_images=5000,
    seen_test_images=600,
    unseen_test_images=300,
    steps=1500,
    batch_size=128,
    lr=2e-3,
    warmup_steps=100,
    weight_decay=0.1,
)
#: ``--quick``: a smoke test of every stage, in seconds (its accuracy means nothing).
QUICK = DemoSettings(
    train_images=256,
    seen_test_images=50,
    unseen_test_images=25,
    steps=20,
    batch_size=32,
    lr=3e-3,
    warmup_steps=5,
    weight_decay=0.1,
)


@dataclass(frozen=True)
class DemoResult:
    """What the demo did and where it wrote it."""

    scores: Scores
    steps: int
    train_seconds: float
    total_seconds: float
    model_dir: Path
    loss_curve: Path
    similarity: Path
    metrics: Path
    verified: bool
    #: The held-out images of seen and of unseen combinations as data sets ``clip eval`` reads (``wds`` layout).
    held_out_sets: tuple[Path, Path] | None = None


def demo_card() -> ModelCard:
    """The demo's card; :class:`PluginError` naming the packages to install if what it needs is missing (the
    tower kinds ``vit`` and ``text-transformer``, the tokenizer ``clip-bpe``, the loss ``clip``)."""
    missing = [kind for kind in ("vit", "text-transformer") if kind not in registry.tower_kinds()]
    if "clip-bpe" not in {t for info in registry.plugins() for t in info.tokenizers}:
        missing.append("clip-bpe")
    if "clip" not in registry.losses():
        missing.append("clip")
    if missing:
        packages = sorted({registry.KNOWN_PROVIDERS[name] for name in missing})
        raise PluginError(
            f"clip demo trains a vit + text-transformer card with the clip loss, but {', '.join(map(repr, missing))} "
            f"{'is' if len(missing) == 1 else 'are'} not installed: pip install {' '.join(packages)}"
        )
    data = json.loads(files("clip_core.demo").joinpath("card.json").read_text(encoding="utf-8"))
    return get_card(data)


def run_demo(
    out: str | os.PathLike[str] = "clip-demo",
    seed: int = 0,
    steps: int | None = None,
    quick: bool = False,
    verify: bool = False,
    threads: int | None = 1,
    quiet: bool = False,
) -> DemoResult:
    """Run the demo (see this module's documentation) into ``out`` and print a summary unless ``quiet``.

    ``steps`` overrides the number of training updates; ``quick`` shrinks everything to a smoke test; ``verify``
    reloads the saved model and checks that it reproduces the scores exactly (:class:`CheckpointError` if not);
    ``threads`` sets torch's thread count for the run (one is fastest for a model this small, and far faster on a
    busy machine), None leaves it alone.
    """
    started = time.perf_counter()
    settings = QUICK if quick else FULL
    total_steps = steps or settings.steps
    card = demo_card()
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        say = (lambda text: None) if quiet else print
        say(f"clip demo: generating {settings.train_images} training images of coloured shapes (seed {seed})")
        preprocess, tokenizer = get_preprocess(card), get_tokenizer(card)
        sets = demo_data(settings, seed, card.preprocess.image_size)
        train_set, seen_set, unseen_set = sets.train, sets.seen, sets.unseen
        data = TensorPairs(_pixels(preprocess, [image for _, image in train_set]), sets.captions)

        say(f"clip demo: training card {card.name!r} from scratch for {total_steps} updates")
        config = TrainConfig(
            out=folder,
            steps=total_steps,
            batch_size=settings.batch_size,
            lr=settings.lr,
            warmup_steps=min(settings.warmup_steps, total_steps),
            weight_decay=settings.weight_decay,
            seed=seed,
            checkpoints=False,
            progress=not quiet,
            log_every=25,
        )
        torch.manual_seed(seed)
        from clip_core.create import create_model

        trainer = Trainer(config, model=create_model(card), dataset=data, tokenizer=tokenizer)
        try:
            trained = trainer.fit()
        finally:
            trainer.close()
        assert trained.model_dir is not None
        model = trainer.model.eval()

        held_out = sets.held_out(preprocess)
        scores = score(model, tokenizer, *held_out)
        verified = False
        if verify:
            reloaded = score(load_checkpoint(trained.model_dir), tokenizer, *held_out)
            if reloaded != scores:
                raise CheckpointError(
                    f"the model reloaded from {trained.model_dir} scores {reloaded}, not {scores} as trained"
                )
            verified = True

        held_out_sets = (
            _write_held_out(folder / "heldout-seen", seen_set),
            _write_held_out(folder / "heldout-unseen", unseen_set),
        )
        losses = [record.loss for record in trained.history]
        loss_curve = draw_loss_curve(losses, folder / "loss.png", title=f"training loss ({card.name}, seed {seed})")
        similarity = _similarity_picture(model, tokenizer, preprocess, seen_set, unseen_set, folder / "similarity.png")
        total = time.perf_counter() - started
        result = DemoResult(
            scores=scores,
            steps=trained.steps,
            train_seconds=trained.seconds,
            total_seconds=total,
            model_dir=trained.model_dir,
            loss_curve=loss_curve,
            similarity=similarity,
            metrics=folder / "metrics.json",
            verified=verified,
            held_out_sets=held_out_sets,
        )
        _write_metrics(result, card, settings, seed, losses)
        if not quiet:
            _print_summary(result, card, settings, len(losses))
        return result
    finally:
        torch.set_num_threads(previous_threads)


@dataclass(frozen=True)
class DemoData:
    """The demo's generated images: training set (with its captions) and the two held-out sets."""

    train: list[tuple[Shape, Image.Image]]
    captions: list[str]
    seen: list[tuple[Shape, Image.Image]]
    unseen: list[tuple[Shape, Image.Image]]

    def held_out(
        self, preprocess: ImagePreprocess
    ) -> tuple[tuple[torch.Tensor, list[Shape]], tuple[torch.Tensor, list[Shape]]]:
        """The held-out sets as ``(pixels, shapes)``: seen combinations, then unseen ones."""
        seen = (_pixels(preprocess, [image for _, image in self.seen]), [what for what, _ in self.seen])
        unseen = (_pixels(preprocess, [image for _, image in self.unseen]), [what for what, _ in self.unseen])
        return seen, unseen


def demo_data(settings: DemoSettings, seed: int, image_size: int) -> DemoData:
    """The images (and training captions) the demo generates for ``seed``: the same for the same arguments."""
    rng = random.Random(seed)
    train = generate(settings.train_images, combinations(seen=True), image_size, rng)
    seen = generate(settings.seen_test_images, combinations(seen=True), image_size, rng)
    unseen = generate(settings.unseen_test_images, combinations(seen=False), image_size, rng)
    return DemoData(train, [what.random_caption(rng) for what, _ in train], seen, unseen)


def _write_held_out(folder: Path, pictures: list[tuple[Shape, Image.Image]]) -> Path:
    """A held-out set as a data set in CLIP_benchmark's ``wds`` layout, with the demo's classes and templates."""
    from clip_core.eval.wds import write_wds

    samples = [(image, CLASSNAMES.index(what.classname)) for what, image in pictures]
    templates = [template.replace("{}", "{c}") for template in TEMPLATES]
    return write_wds(folder, samples, classnames=CLASSNAMES, templates=templates)


def _pixels(preprocess: ImagePreprocess, images: list[Image.Image]) -> torch.Tensor:
    return preprocess.batch(images)


def _similarity_picture(
    model: Any,
    tokenizer: Any,
    preprocess: ImagePreprocess,
    seen_set: list[tuple[Shape, Image.Image]],
    unseen_set: list[tuple[Shape, Image.Image]],
    path: Path,
) -> Path:
    """Eight held-out images of seen and four of unseen combinations, one per class, against their captions."""
    chosen: list[tuple[Shape, Image.Image]] = []
    for pool, count in ((seen_set, 8), (unseen_set, 4)):
        classes: set[str] = set()
        for what, image in pool:
            if what.classname not in classes and len(classes) < count:
                classes.add(what.classname)
                chosen.append((what, image))
    captions = [what.caption + (" *" if (what.colour, what.shape) in UNSEEN else "") for what, _ in chosen]
    with torch.no_grad():
        images = model.encode_image(preprocess.batch([image for _, image in chosen]), normalize=True)
        texts = model.encode_text(tokenizer([what.caption for what, _ in chosen]), normalize=True)
        similarity = (texts @ images.T).tolist()
    return draw_similarity_matrix(
        [image for _, image in chosen],
        captions,
        similarity,
        path,
        title="cosine similarity of held-out images (columns) and captions (rows); * never seen in training",
    )


def _write_metrics(result: DemoResult, card: ModelCard, settings: DemoSettings, seed: int, losses: list[float]) -> None:
    metrics = {
        "card": card.name,
        "seed": seed,
        "steps": result.steps,
        "settings": asdict(settings),
        "train_seconds": round(result.train_seconds, 2),
        "total_seconds": round(result.total_seconds, 2),
        "torch_threads": torch.get_num_threads(),
        "zero_shot": {
            "classes": CLASSNAMES,
            "templates": list(TEMPLATES),
            "top1_seen": result.scores.zero_shot_top1_seen,
            "top1_unseen": result.scores.zero_shot_top1_unseen,
        },
        "text_to_image_recall_at_1": {
            "seen": result.scores.recall_at_1_seen,
            "unseen": result.scores.recall_at_1_unseen,
        },
        "unseen_combinations": sorted(f"{colour} {shape}" for colour, shape in UNSEEN),
        "final_loss": losses[-1] if losses else None,
        "verified_after_reload": result.verified,
        "model": str(result.model_dir),
        "loss_curve": str(result.loss_curve),
        "similarity": str(result.similarity),
        "held_out_sets": [str(path) for path in result.held_out_sets or ()],
    }
    result.metrics.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")


def _print_summary(result: DemoResult, card: ModelCard, settings: DemoSettings, updates: int) -> None:
    s = result.scores
    seen_classes = len(combinations(seen=True))
    minutes, seconds = divmod(result.total_seconds, 60)
    lines = [
        "",
        f"clip demo: trained {card.name!r} ({card.image.kind} + {card.text.kind}) from scratch: {updates} updates "
        f"of {settings.batch_size} pairs in {result.train_seconds:.0f} s",
        f"  zero-shot top-1 over {len(CLASSNAMES)} colour-shape classes:",
        f"    held-out images, combinations seen in training ({seen_classes}):  {s.zero_shot_top1_seen:7.1%}"
        f"  ({settings.seen_test_images} images)",
        f"    combinations never seen in training ({len(UNSEEN)}):            {s.zero_shot_top1_unseen:7.1%}"
        f"  ({settings.unseen_test_images} images)",
        "  text-to-image recall@1 (each caption's best held-out image shows it):",
        f"    seen combinations:    {s.recall_at_1_seen:7.1%}",
        f"    unseen combinations:  {s.recall_at_1_unseen:7.1%}",
        f"  model:       {result.model_dir}   (clip_core.load_checkpoint)",
        f"  loss curve:  {result.loss_curve}",
        f"  similarity:  {result.similarity}",
        f"  metrics:     {result.metrics}",
    ]
    if result.held_out_sets:
        seen, unseen = result.held_out_sets
        lines.append(f"  held out:    {seen}, {unseen}   (clip eval --model {result.model_dir} --data {seen})")
    if result.verified:
        lines.append("  verified: the model reloaded from disk reproduces these scores exactly")
    lines.append(
        f"  demo time:   {int(minutes)} min {seconds:.0f} s (data, training, scoring, pictures; after start-up)"
    )
    print("\n".join(lines))
