"""ONNX Runtime vs clip-sdk (torch fp32) vs open_clip: image and text encoding on the same weights, in one run.

For each card (ViT-B-32 and RN50 by default): a randomly initialised open_clip model, loaded into clip-sdk through
``clip_core.load_checkpoint`` and exported by ``clip_core.export.onnx.write_onnx``; ONNX Runtime (CPU execution
provider, all graph optimisations) runs ``image.onnx`` and ``text.onnx``. All outputs are unit embeddings, checked
to agree before timing. Images: batch 16. Texts: batch 64 of "a photo of a {label}."; open_clip always runs all
77 positions, clip-sdk cuts the batch to the longest text itself, and ONNX Runtime is timed both on the
tokenizer's 77 ids and on ids cut to the longest text (the graph's length is dynamic). 2 threads everywhere
(torch and ONNX Runtime's intra-op pool). The variants run interleaved, round after round, so a busy neighbour
slows them alike; prints the median rate and the median of per-round ratios.

    python benchmarks/bench_onnx.py [--cards ViT-B-32 RN50] [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import open_clip
import torch

import clip_core
from clip_core.export.onnx import IMAGE_FILE, TEXT_FILE, write_onnx

sys.path.insert(0, str(Path(__file__).parent))
from _timing import interleaved_seconds, median_ratio

LABELS = ("cat", "dog", "car", "airplane", "bird", "ship", "truck", "horse", "deer", "frog", "apple", "tiger")
THREADS = 2


def session(path: Path) -> Any:
    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def report(title: str, unit: str, batch: int, times: dict[str, list[float]], reference: str) -> None:
    print(title)
    for label, seconds in times.items():
        print(f"  {label:34s} {batch / statistics.median(seconds):8.1f} {unit}/s (median)")
    for label in times:
        if label == reference:
            continue
        ratios = [f"vs {reference}: {median_ratio(times[reference], times[label]):.2f}x"]
        if label.startswith("onnxruntime"):
            ratios.append(f"vs clip-sdk fp32: {median_ratio(times['clip-sdk fp32'], times[label]):.2f}x")
        print(f"  {label}: " + "; ".join(ratios) + " (median of per-round ratios)")


def agree(outputs: dict[str, np.ndarray]) -> float:
    """The largest absolute difference between any output and the first; fails above 1e-4."""
    first, *others = outputs.values()
    worst = max(float(np.abs(other - first).max()) for other in others)
    assert worst <= 1e-4, f"outputs differ by {worst}"
    return worst


def bench_card(name: str, rounds: int, image_batch: int, text_batch: int) -> None:
    torch.manual_seed(0)
    reference = open_clip.create_model(name).eval()
    with tempfile.TemporaryDirectory() as tmp:
        torch.save(reference.state_dict(), Path(tmp) / "weights.pt")
        ours = clip_core.load_checkpoint(Path(tmp) / "weights.pt", card=name).eval()
        start = time.perf_counter()
        paths = write_onnx(ours, Path(tmp))
        seconds = time.perf_counter() - start
        sizes = ", ".join(f"{path.name} {path.stat().st_size / 2**20:.0f} MiB" for path in paths)
        print(f"{name}: exported in {seconds:.1f} s ({sizes})")
        image, text = session(Path(tmp) / IMAGE_FILE), session(Path(tmp) / TEXT_FILE)

    size = ours.card.preprocess.image_size
    pixels = torch.randn(image_batch, 3, size, size, generator=torch.Generator().manual_seed(1))
    feed = pixels.numpy()
    prompts = [f"a photo of a {LABELS[i % len(LABELS)]}." for i in range(text_batch)]
    ids = clip_core.get_tokenizer(ours.card)(prompts)
    longest = int(ids.argmax(dim=-1).max()) + 1
    full, cut = ids.numpy(), ids[:, :longest].numpy().copy()

    def normalized(run: Callable[[], torch.Tensor]) -> Callable[[], np.ndarray]:
        return lambda: torch.nn.functional.normalize(run(), dim=-1).numpy()

    with torch.inference_mode():
        image_runs: dict[str, Callable[[], Any]] = {
            "open_clip fp32": normalized(lambda: reference.encode_image(pixels)),
            "clip-sdk fp32": lambda: ours.encode_image(pixels, normalize=True).numpy(),
            "onnxruntime fp32": lambda: image.run(None, {"pixels": feed})[0],
        }
        image_error = agree({label: run() for label, run in image_runs.items()})
        image_times = interleaved_seconds(image_runs, rounds)
        open_clip_ids = ids  # open_clip's tokenizer gives the same ids (tests/test_tokenizer_parity.py)
        text_runs: dict[str, Callable[[], Any]] = {
            "open_clip fp32": normalized(lambda: reference.encode_text(open_clip_ids)),
            "clip-sdk fp32": lambda: ours.encode_text(ids, normalize=True).numpy(),
            "onnxruntime fp32, 77 ids": lambda: text.run(None, {"ids": full})[0],
            f"onnxruntime fp32, {longest} ids": lambda: text.run(None, {"ids": cut})[0],
        }
        text_error = agree({label: run() for label, run in text_runs.items()})
        text_times = interleaved_seconds(text_runs, rounds)

    threads = f"{THREADS} threads, {rounds} rounds"
    report(
        f"{name} image encoding, batch {image_batch}, {size}px, {threads}",
        "images",
        image_batch,
        image_times,
        "open_clip fp32",
    )
    print(f"  largest difference between the unit embeddings: {image_error:.1e}")
    report(
        f"{name} text encoding, batch {text_batch}, {longest} of 77 positions used, {threads}",
        "texts",
        text_batch,
        text_times,
        "open_clip fp32",
    )
    print(f"  largest difference between the unit embeddings: {text_error:.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cards", nargs="+", default=["ViT-B-32", "RN50"])
    parser.add_argument("--image-batch", type=int, default=16)
    parser.add_argument("--text-batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    print(f"torch {torch.__version__}, onnxruntime {ort.__version__}, open_clip {open_clip.__version__}")
    for name in args.cards:
        bench_card(name, args.rounds, args.image_batch, args.text_batch)


if __name__ == "__main__":
    main()
