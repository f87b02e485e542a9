"""Zero-shot classification throughput: `clip_core.evaluate` vs CLIP_benchmark on the same data and weights, in one run.

A randomly initialised open_clip model (ViT-B-32 by default) is loaded into clip-sdk through
``clip_core.load_checkpoint``; a data set of generated shapes (the demo's pictures, 30 classes, the demo's two
templates) is written in CLIP_benchmark's ``wds`` layout. Each round evaluates it end to end, in fp32 on the CPU with
the same batch size and worker count: clip-sdk through ``clip_core.evaluate``, CLIP_benchmark through its own reader
(``build_wds_dataset``), ``zero_shot_classifier`` and ``run_classification`` (``amp=False``, as ``--no_amp``).
The two run interleaved, round after round, so a busy neighbour slows both alike; prints median images/s of each,
the median of per-round ratios, and whether both gave the same acc1.

    python benchmarks/bench_eval.py [--card ViT-B-32] [--images 256] [--batch 64] [--workers 2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import warnings
from pathlib import Path

import open_clip
import torch
from clip_benchmark.datasets.builder import build_wds_dataset
from clip_benchmark.metrics import zeroshot_classification as cb

import clip_core
from clip_core.demo.evaluation import CLASSNAMES, TEMPLATES
from clip_core.demo.shapes import combinations, generate
from clip_core.eval import evaluate, write_wds

sys.path.insert(0, str(Path(__file__).parent))
from _timing import interleaved_seconds, median_ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--card", default="ViT-B-32")
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    reference = open_clip.create_model(args.card).eval()
    size = reference.visual.image_size[0]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        torch.save(reference.state_dict(), folder / "model.pt")
        ours = clip_core.load_checkpoint(folder / "model.pt").eval()
        pictures = generate(args.images, combinations(seen=True) + combinations(seen=False), size, random.Random(0))
        samples = [(image, CLASSNAMES.index(what.classname)) for what, image in pictures]
        templates = [t.replace("{}", "{c}") for t in TEMPLATES]
        data = write_wds(folder / "shapes", samples, classnames=CLASSNAMES, templates=templates, shard_size=64)
        tokenizer = open_clip.get_tokenizer(args.card)
        transform = open_clip.image_transform(size, is_train=False)
        acc1: dict[str, float] = {}

        def run_ours() -> None:
            result = evaluate(ours, data, batch_size=args.batch, workers=args.workers)
            acc1["clip-sdk"] = result.metrics["acc1"]

        def run_clip_benchmark() -> None:
            dataset = build_wds_dataset("shapes", transform, split="test", data_dir=str(data))
            loader = torch.utils.data.DataLoader(
                dataset.batched(args.batch), batch_size=None, shuffle=False, num_workers=args.workers
            )
            with torch.no_grad():
                classifier = cb.zero_shot_classifier(
                    reference, tokenizer, dataset.classes, dataset.templates, "cpu", False
                )
                logits, target = cb.run_classification(reference, classifier, loader, "cpu", amp=False)
            acc1["CLIP_benchmark"] = (logits.argmax(dim=1) == target).float().mean().item()

        times = interleaved_seconds({"CLIP_benchmark": run_clip_benchmark, "clip-sdk": run_ours}, rounds=args.rounds)
    print(
        f"zero-shot classification, {args.card} (random weights), {args.images} images at {size}px, 30 classes x "
        f"{len(TEMPLATES)} templates, batch {args.batch}, {args.workers} workers, fp32, {torch.get_num_threads()} "
        f"threads, {args.rounds} rounds"
    )
    for name, seconds in times.items():
        median = statistics.median(seconds)
        print(f"  {name:<15} {args.images / median:8.1f} images/s  (median {median:.2f} s)")
    print(f"  clip-sdk / CLIP_benchmark: {median_ratio(times['CLIP_benchmark'], times['clip-sdk']):.2f}x")
    print(f"  acc1: clip-sdk {acc1['clip-sdk']:.4f}, CLIP_benchmark {acc1['CLIP_benchmark']:.4f}")


if __name__ == "__main__":
    main()
