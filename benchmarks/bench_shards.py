"""Training from webdataset shards against an in-memory data set: samples/s of the demo card's training.

The demo's generated shapes and captions are written as img2dataset-style shards (``KEY.png`` + ``KEY.txt`` +
``KEY.json``, ``--per-shard`` samples each) and also held in memory already preprocessed (``TensorPairs``). The
same training (the demo's card, batch and learning rate) then runs on each, interleaved round after round so that a
busy neighbour slows both alike: the shard runs decode every PNG, preprocess it and tokenize its caption in
``--workers`` data-loading workers while the model trains, the in-memory runs only tokenize. Prints each variant's
median samples/s and the median of the per-round shards / in-memory ratios (the target is 90% or more), and the
rate of the shard stream alone (reading, decoding, preprocessing and tokenizing in one process, no training).

    python benchmarks/bench_shards.py [--steps 60] [--rounds 5] [--workers 1] [--threads 1]
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import tarfile
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

import clip_core
from clip_core.demo.run import FULL, demo_card, demo_data
from clip_core.shardfiles import expand_shards
from clip_core.training import TensorPairs, TrainConfig, Trainer
from clip_core.training.data import PairCollator
from clip_core.training.shards import ShardPairs


def write_shards(folder: Path, images: list[Image.Image], captions: list[str], per_shard: int) -> str:
    """img2dataset's layout; returns the brace pattern naming the shards."""
    count = (len(images) + per_shard - 1) // per_shard
    for shard in range(count):
        with tarfile.open(folder / f"{shard:05d}.tar", "w") as archive:
            for i in range(shard * per_shard, min((shard + 1) * per_shard, len(images))):
                buffer = io.BytesIO()
                images[i].save(buffer, format="PNG")
                key = f"{i:09d}"
                for name, data in (
                    (f"{key}.png", buffer.getvalue()),
                    (f"{key}.txt", captions[i].encode()),
                    (f"{key}.json", json.dumps({"key": key}).encode()),
                ):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    archive.addfile(info, io.BytesIO(data))
    return f"{folder}/{{00000..{count - 1:05d}}}.tar"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--per-shard", type=int, default=1000)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    card = demo_card()
    data = demo_data(FULL, seed=0, image_size=card.preprocess.image_size)
    images = [image for _, image in data.train]
    memory = TensorPairs(clip_core.get_preprocess(card).batch(images), data.captions)
    with tempfile.TemporaryDirectory() as tmp:
        pattern = write_shards(Path(tmp), images, data.captions, args.per_shard)
        common = {
            "steps": args.steps,
            "batch_size": FULL.batch_size,
            "lr": FULL.lr,
            "warmup_steps": 10,
            "checkpoints": False,
            "progress": False,
            "log_every": args.steps,
        }
        speeds: dict[str, list[float]] = {"in memory": [], "shards": []}
        for round_ in range(args.rounds + 1):  # round 0 warms up
            for name in speeds:
                out = Path(tmp) / f"run-{name.replace(' ', '-')}-{round_}"
                if name == "in memory":
                    config = TrainConfig(**common, out=out, workers=0)
                    speed = samples_per_second_with(config, memory, card)
                else:
                    config = TrainConfig(**common, out=out, workers=args.workers, data=pattern)
                    speed = samples_per_second_with(config, None, card)
                if round_:
                    speeds[name].append(speed)
        alone = stream_samples_per_second(pattern, card, steps=args.steps, batch_size=FULL.batch_size)
    ratios = [s / m for s, m in zip(speeds["shards"], speeds["in memory"], strict=True)]
    print(f"demo card {card.name}, batch {FULL.batch_size}, {args.steps} updates a run, {args.rounds} rounds")
    print(f"torch threads {args.threads}, shard workers {args.workers}, {len(images)} samples in {args.per_shard}s")
    for name, values in speeds.items():
        print(f"  {name:10s}: {statistics.median(values):7.0f} samples/s (median)")
    print(f"  shards / in memory: {statistics.median(ratios):.1%} (median of per-round ratios; target >= 90%)")
    print(f"  the shard stream alone, one process: {alone:.0f} samples/s ({1e6 / alone:.0f} us a sample)")


def stream_samples_per_second(pattern: str, card: clip_core.ModelCard, *, steps: int, batch_size: int) -> float:
    """Samples/s of the training's shard stream read in this process, without training: what one worker costs."""
    pairs = ShardPairs(expand_shards(pattern), clip_core.get_preprocess(card))
    collate = PairCollator(clip_core.get_tokenizer(card))
    loader = pairs.loader(
        cursor=(0, 0, 0),
        start_step=0,
        stop=steps,
        global_batch=batch_size,
        rank=0,
        world_size=1,
        workers=0,
        collate=collate,
    )
    started = time.perf_counter()
    for _ in loader:
        pass
    return steps * batch_size / (time.perf_counter() - started)


def samples_per_second_with(config: TrainConfig, dataset: TensorPairs | None, card: clip_core.ModelCard) -> float:
    """Samples/s of one training run on ``card`` (the demo's card is data, not a registered name)."""
    model = clip_core.create_model(card)
    trainer = Trainer(config, model=model, dataset=dataset)
    try:
        started = time.perf_counter()
        result = trainer.fit()
        return result.steps * config.batch_size / (time.perf_counter() - started)
    finally:
        trainer.close()


if __name__ == "__main__":
    main()
