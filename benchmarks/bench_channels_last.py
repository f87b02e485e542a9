"""Does channels_last pay for the modified ResNet on this CPU? RN50's image tower, NCHW against channels_last.

The tower runs its trunk in channels_last (weights and activations); this compares it with the same weights in the
default NCHW layout, in float32 and converted by ``ClipModel.to_bf16()`` (the tower has no LayerNorm, so every weight
becomes bfloat16). Variants run interleaved, round after round, so that a busy neighbour slows them all alike; prints
each variant's median images/s and the median of the per-round channels_last / NCHW speed ratios. The outputs of the
two layouts are checked to agree first.

    python benchmarks/bench_channels_last.py [--card RN50] [--batch 16] [--rounds 10]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

import clip_core
from clip_encoders_resnet import ModifiedResNet


def runner(tower: ModifiedResNet, pixels: torch.Tensor, layout: torch.memory_format) -> Callable[[], torch.Tensor]:
    """The tower's computation with trunk weights and input in ``layout``."""
    tower.trunk.to(memory_format=layout)
    x = pixels.to(tower.attnpool.positional_embedding.dtype).contiguous(memory_format=layout)
    return lambda: tower.attnpool(tower.trunk.forward_features(x))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--card", default="RN50")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    card = clip_core.get_card(args.card)
    torch.manual_seed(0)
    source = clip_core.build_tower(card.image, card.embed_dim).eval().state_dict()
    size = card.preprocess.image_size
    pixels = torch.randn(args.batch, 3, size, size, generator=torch.Generator().manual_seed(1))

    variants: dict[str, Callable[[], torch.Tensor]] = {}
    for dtype in ("float32", "bfloat16"):
        for layout, label in ((torch.contiguous_format, "NCHW"), (torch.channels_last, "channels_last")):
            model = clip_core.ClipModel(card).eval()
            model.visual.load_state_dict(source)
            if dtype == "bfloat16":
                model.to_bf16()
            assert isinstance(model.visual, ModifiedResNet)
            variants[f"{dtype} {label}"] = runner(model.visual, pixels, layout)

    times: dict[str, list[float]] = {name: [] for name in variants}
    with torch.inference_mode():
        for dtype in ("float32", "bfloat16"):
            nchw, channels_last = variants[f"{dtype} NCHW"](), variants[f"{dtype} channels_last"]()
            tolerance = (1e-5 if dtype == "float32" else 2e-2) * float(nchw.abs().max())
            torch.testing.assert_close(channels_last.float(), nchw.float(), rtol=0, atol=tolerance)
        for _ in range(args.rounds):
            for name, run in variants.items():
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)

    threads = torch.get_num_threads()
    print(f"{args.card} image tower, batch {args.batch}, {size}px, {threads} threads, {args.rounds} rounds")
    for name, seconds in times.items():
        print(f"  {name:24s} {args.batch / statistics.median(seconds):7.1f} images/s (median)")
    for dtype in ("float32", "bfloat16"):
        ratios = [a / b for a, b in zip(times[f"{dtype} NCHW"], times[f"{dtype} channels_last"], strict=True)]
        print(f"  {dtype}: channels_last / NCHW speed {statistics.median(ratios):.2f}x (median of per-round ratios)")


if __name__ == "__main__":
    main()
