"""Zero-shot classification throughput: `clip_core.evaluate` vs CLIP_benchmark on the same data and weights, in one run.

A randomly initialised open_clip model (ViT-B-32 by default) is loaded into clip-sdk through
``clip_core.load_checkpoint``; a data set of generated shapes (the demo's pictures, stored at ``--source-size`` so
both sides resize and crop as with real data; 30 classes, the demo's two templates) is written in CLIP_benchmark's
``wds`` layout. Each round evaluates it end to end, in fp32 on the CPU with the same batch size and worker count:
clip-sdk through ``clip_core.evaluate``, CLIP_benchmark as its ``clip_benchmark eval`` runs a ``wds/`` data set
(``build_wds_dataset``, a ``DataLoader`` over ``dataset.batched(batch)``, ``zero_shot_classifier`` and
``run_classification`` with ``amp=False``, as ``--no_amp``).

Before timing, both models embed the same images and prompts and must agree; a one-batch, two-class warm-up runs
both sides once. The two then run interleaved, round after round (each round printed as it ends), so a busy
neighbour slows both alike. Printed: median images/s of each end to end, of the image pass alone (reading,
preprocessing and the image tower) and the seconds spent on the rest (the text classifier; for clip-sdk also the
weights' fingerprint), the medians of per-round ratios, acc1 of each and whether the two confusion matrices are the
same, the load average before and after, and the minutes the whole run took.

    python benchmarks/bench_eval.py [--card ViT-B-32] [--images 256] [--batch 64] [--workers 2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import open_clip
import torch
import torch.nn.functional as F
from clip_benchmark.datasets.builder import build_wds_dataset  # type: ignore[import-untyped]
from clip_benchmark.metrics import zeroshot_classification as cb  # type: ignore[import-untyped]
from PIL import Image

import clip_core
from clip_core.demo.evaluation import CLASSNAMES, TEMPLATES
from clip_core.demo.shapes import combinations, generate
from clip_core.eval import evaluate, write_wds
from clip_core.eval.metrics import confusion_matrix
from clip_core.eval.wds import MIN_SHARDS
from clip_core.model import ClipModel

sys.path.insert(0, str(Path(__file__).parent))
from _timing import median_ratio

_AGREE = 1e-4  # largest difference allowed between the two sides' unit embeddings


@dataclass
class Outcome:
    """One evaluation: wall seconds end to end and of the image pass, acc1 and the confusion matrix."""

    seconds: float
    image_seconds: float
    acc1: float
    confusion: list[list[int]]


def clip_sdk(model: ClipModel, data: Path, batch: int, workers: int) -> Outcome:
    """``clip_core.evaluate`` as a user calls it."""
    began = time.perf_counter()
    result = evaluate(model, data, batch_size=batch, workers=workers)
    seconds = time.perf_counter() - began
    return Outcome(seconds, result.images / result.images_per_second, result.metrics["acc1"], result.confusion)


def clip_benchmark(
    model: torch.nn.Module,
    transform: Callable[[Image.Image], torch.Tensor],
    tokenizer: object,
    data: Path,
    batch: int,
    workers: int,
) -> Outcome:
    """What ``clip_benchmark eval --dataset wds/NAME --no_amp`` runs for zero-shot classification."""
    began = time.perf_counter()
    dataset = build_wds_dataset(data.name, transform, split="test", data_dir=str(data))
    loader = torch.utils.data.DataLoader(dataset.batched(batch), batch_size=None, shuffle=False, num_workers=workers)
    classifier = cb.zero_shot_classifier(model, tokenizer, dataset.classes, dataset.templates, "cpu", False)
    images_began = time.perf_counter()
    logits, target = cb.run_classification(model, classifier, loader, "cpu", amp=False)
    finished = time.perf_counter()
    predicted = logits.argmax(dim=1)
    confusion = confusion_matrix(predicted, target, len(dataset.classes)).tolist()
    acc1 = (predicted == target).float().mean().item()
    return Outcome(finished - began, finished - images_began, acc1, confusion)


def shapes(folder: Path, count: int, size: int, classes: int, workers: int) -> Path:
    """A ``wds`` data set of ``count`` generated shapes of the first ``classes`` classes, stored at ``size`` pixels,
    in shards of at most 64 and at least one shard per worker (CLIP_benchmark's reader fails on a worker without)."""
    combos = [c for c in combinations(seen=True) + combinations(seen=False) if f"{c[0]} {c[1]}" in CLASSNAMES[:classes]]
    pictures = generate(count, combos, size, random.Random(0))
    samples = [(image, CLASSNAMES.index(what.classname)) for what, image in pictures]
    templates = [t.replace("{}", "{c}") for t in TEMPLATES]
    return write_wds(
        folder,
        samples,
        classnames=CLASSNAMES[:classes],
        templates=templates,
        shard_size=64,
        min_shards=max(MIN_SHARDS, workers),
    )


def agreement(reference: Any, ours: ClipModel, transform: Callable[[Image.Image], torch.Tensor], size: int) -> float:
    """Largest difference between the two models' unit embeddings of a few images and prompts (same weights)."""
    pictures = [image for _, image in generate(4, combinations(seen=True), size, random.Random(1))]
    preprocess = clip_core.get_preprocess(ours.card)
    prompts = [t.format(name) for name in CLASSNAMES[:4] for t in TEMPLATES]
    with torch.no_grad():
        theirs_images = F.normalize(reference.encode_image(torch.stack([transform(p) for p in pictures])), dim=-1)
        ours_images = ours.encode_image(torch.stack([preprocess(p) for p in pictures]), normalize=True)
        theirs_texts = F.normalize(reference.encode_text(open_clip.tokenize(prompts)), dim=-1)
        ours_texts = ours.encode_text(clip_core.get_tokenizer(ours.card)(prompts), normalize=True)
    return max((theirs_images - ours_images).abs().max().item(), (theirs_texts - ours_texts).abs().max().item())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--card", default="ViT-B-32")
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--source-size", type=int, default=320, help="side of the stored images, in pixels")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    load_before = os.getloadavg()
    started = time.perf_counter()
    torch.manual_seed(0)
    reference = open_clip.create_model(args.card).eval()
    size = reference.visual.image_size[0]
    tokenizer = open_clip.get_tokenizer(args.card)
    transform = open_clip.image_transform(size, is_train=False)
    classes = len(CLASSNAMES)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        torch.save(reference.state_dict(), folder / "model.pt")
        ours = clip_core.load_checkpoint(folder / "model.pt").eval()
        difference = agreement(reference, ours, transform, args.source_size)
        if difference > _AGREE:
            raise SystemExit(f"the two models disagree by {difference:.2e}: not the same weights")
        data = shapes(folder / "shapes", args.images, args.source_size, classes, args.workers)
        warm = shapes(folder / "warmup", min(args.batch, args.images), args.source_size, 2, args.workers)
        sides: dict[str, Callable[[Path], Outcome]] = {
            "CLIP_benchmark": lambda d: clip_benchmark(reference, transform, tokenizer, d, args.batch, args.workers),
            "clip-sdk": lambda d: clip_sdk(ours, d, args.batch, args.workers),
        }
        for run in sides.values():
            run(warm)
        outcomes: dict[str, list[Outcome]] = {name: [] for name in sides}
        for number in range(1, args.rounds + 1):
            for name, run in sides.items():
                outcomes[name].append(run(data))
            seen = {name: results[-1] for name, results in outcomes.items()}
            print(
                f"round {number}/{args.rounds}: "
                + ", ".join(f"{name} {o.seconds:.1f} s (images {o.image_seconds:.1f} s)" for name, o in seen.items())
                + f", {seen['CLIP_benchmark'].seconds / seen['clip-sdk'].seconds:.2f}x",
                flush=True,
            )
    load_after = os.getloadavg()
    print(
        f"zero-shot classification, {args.card} (random weights), {args.images} images stored at "
        f"{args.source_size}px, read at {size}px, {classes} classes x {len(TEMPLATES)} templates, batch {args.batch}, "
        f"{args.workers} workers, fp32, {torch.get_num_threads()} threads, {args.rounds} rounds; load average "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after; {(time.perf_counter() - started) / 60:.1f} minutes "
        "in all"
    )
    print(f"  {'':<15} {'end to end':>18} {'image pass':>18} {'rest (classifier)':>18}")
    for name, results in outcomes.items():
        total = statistics.median(o.seconds for o in results)
        images = statistics.median(o.image_seconds for o in results)
        rest = statistics.median(o.seconds - o.image_seconds for o in results)
        print(f"  {name:<15} {args.images / total:9.1f} images/s {args.images / images:9.1f} images/s {rest:16.2f} s")
    theirs, ours_runs = outcomes["CLIP_benchmark"], outcomes["clip-sdk"]

    def ratio(of: Callable[[Outcome], float]) -> float:
        return median_ratio([of(o) for o in theirs], [of(o) for o in ours_runs])

    print(
        f"  clip-sdk / CLIP_benchmark: {ratio(lambda o: o.seconds):.2f}x end to end, "
        f"{ratio(lambda o: o.image_seconds):.2f}x image pass, {ratio(lambda o: o.seconds - o.image_seconds):.1f}x rest"
    )
    same = all(o.confusion == theirs[0].confusion for o in [*theirs, *ours_runs])
    print(
        f"  acc1: clip-sdk {ours_runs[0].acc1:.4f}, CLIP_benchmark {theirs[0].acc1:.4f}; confusion matrices "
        f"{'identical' if same else 'DIFFER'}; embeddings agree within {difference:.1e}"
    )


if __name__ == "__main__":
    main()
