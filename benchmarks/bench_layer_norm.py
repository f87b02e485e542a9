"""LayerNorm of bf16 activations with float32 weights, three ways: what `ClipModel.to_bf16()` does and its alternatives.

- ``mixed``: torch's layer norm given the bf16 input and the float32 weights (what ``to_bf16()`` runs): statistics and
  affine transform in float32, one rounding to bf16;
- ``cast``: the input cast up to float32, normalised, the output cast back (open_clip's ``LayerNorm`` under bf16);
- ``bf16``: weights and computation in bf16 (what ``model.to(torch.bfloat16)`` runs).

Prints the median time of each (interleaved rounds) on the activations of ViT-B-32's image tower (batch x 50 x 768)
and of its text tower (batch x 77 x 512), the ratios to ``mixed``, and the share of values equal to ``cast``'s.

    python benchmarks/bench_layer_norm.py [--batch 64] [--rounds 20] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from _timing import interleaved_seconds


def variants(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> dict[str, Callable[[], torch.Tensor]]:
    shape = (x.shape[-1],)
    low_weight, low_bias = weight.bfloat16(), bias.bfloat16()
    return {
        "mixed": lambda: F.layer_norm(x, shape, weight, bias, 1e-5),
        "cast": lambda: F.layer_norm(x.float(), shape, weight, bias, 1e-5).to(x.dtype),
        "bf16": lambda: F.layer_norm(x, shape, low_weight, low_bias, 1e-5),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    print(f"LayerNorm on bf16 activations, {args.threads} threads, median of {args.rounds} interleaved rounds")
    print("| activations | mixed (to_bf16) | cast up and back | bf16 throughout | equal to cast |")
    print("|---|---|---|---|---|")
    for name, tokens, width in (("ViT-B-32 image", 50, 768), ("ViT-B-32 text", 77, 512)):
        x = (torch.randn(args.batch, tokens, width, generator=generator) * 3 + 1).bfloat16()
        weight, bias = torch.randn(width, generator=generator), torch.randn(width, generator=generator)
        runs = variants(x, weight, bias)
        with torch.no_grad():
            seconds = interleaved_seconds(runs, args.rounds)
            equal = float((runs["mixed"]() == runs["cast"]()).float().mean())
        median = {key: statistics.median(values) * 1e3 for key, values in seconds.items()}
        mixed = median["mixed"]
        print(
            f"| {name} [{args.batch}, {tokens}, {width}] | {mixed:.2f} ms | {median['cast']:.2f} ms "
            f"({median['cast'] / mixed:.1f}x) | {median['bf16']:.2f} ms ({median['bf16'] / mixed:.1f}x) | {equal:.2%} |"
        )


if __name__ == "__main__":
    main()
