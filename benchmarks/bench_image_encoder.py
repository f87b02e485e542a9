"""Image encoding throughput: clip-sdk vs open_clip vs transformers on the same weights, in one run.

For each card (ViT-B-32 and RN50 by default): a randomly initialised open_clip model, loaded into clip-sdk through
``clip_core.load_checkpoint`` and into transformers' ``CLIPVisionModelWithProjection`` (ViTs only: transformers has
no ResNet CLIP). Batch 16, 2 threads. clip-sdk runs in fp32 and converted by ``model.to_bf16()`` (bf16 weights
but LayerNorm's, which stay and compute in fp32; still fed float32 pixels). The variants run interleaved, round after
round, so a busy neighbour slows them alike; prints median images/s, the median of per-round ratios, and the bf16
cosine to fp32.

    python benchmarks/bench_image_encoder.py [--cards ViT-B-32 RN50] [--batch 16] [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import open_clip
import torch
import torch.nn.functional as F
import transformers

import clip_core

sys.path.insert(0, str(Path(__file__).parent))
from _layouts import hf_encoder_layer_from_ours
from _timing import interleaved_seconds, median_ratio


def hf_vision_from_ours(model: clip_core.ClipModel) -> Any:
    """transformers' vision tower with our ViT weights (the inverse of the `vit` tower's `hf` converter)."""
    image = model.card.image
    hf = transformers.CLIPVisionModelWithProjection(
        transformers.CLIPVisionConfig(
            hidden_size=image.width,  # type: ignore[attr-defined]
            intermediate_size=int(image.width * image.mlp_ratio),  # type: ignore[attr-defined]
            num_hidden_layers=image.layers,  # type: ignore[attr-defined]
            num_attention_heads=image.heads,  # type: ignore[attr-defined]
            image_size=image.image_size,  # type: ignore[attr-defined]
            patch_size=image.patch_size,  # type: ignore[attr-defined]
            projection_dim=model.embed_dim,
            hidden_act=image.activation,  # type: ignore[attr-defined]
            layer_norm_eps=1e-5,
        )
    ).eval()
    ours = {k.removeprefix("visual."): v for k, v in model.state_dict().items() if k.startswith("visual.")}
    root = "vision_model."
    state = {
        f"{root}embeddings.patch_embedding.weight": ours["trunk.patch_embed.proj.weight"],
        f"{root}embeddings.class_embedding": ours["trunk.cls_token"].flatten(),
        f"{root}embeddings.position_embedding.weight": ours["trunk.pos_embed"][0],
        f"{root}pre_layrnorm.weight": ours["trunk.norm_pre.weight"],
        f"{root}pre_layrnorm.bias": ours["trunk.norm_pre.bias"],
        f"{root}post_layernorm.weight": ours["trunk.norm.weight"],
        f"{root}post_layernorm.bias": ours["trunk.norm.bias"],
        "visual_projection.weight": ours["proj.weight"],
    }
    for i in range(image.layers):  # type: ignore[attr-defined]
        state |= hf_encoder_layer_from_ours(ours, f"trunk.blocks.{i}.", f"{root}encoder.layers.{i}.")
    missing, unexpected = hf.load_state_dict(state, strict=False)
    assert not unexpected and all("position_ids" in key for key in missing), (missing, unexpected)
    return hf


def bench_card(name: str, batch: int, rounds: int) -> None:
    torch.manual_seed(0)
    reference = open_clip.create_model(name).eval()
    with tempfile.TemporaryDirectory() as tmp:
        torch.save(reference.state_dict(), Path(tmp) / "weights.pt")
        ours = clip_core.load_checkpoint(Path(tmp) / "weights.pt", card=name)
        ours_bf16 = clip_core.load_checkpoint(Path(tmp) / "weights.pt", card=name).to_bf16()
    size = ours.card.preprocess.image_size
    pixels = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(1))
    hf = hf_vision_from_ours(ours) if ours.card.image.kind == "vit" else None
    with torch.inference_mode():
        expected = reference.encode_image(pixels)
        assert torch.allclose(ours.encode_image(pixels), expected, rtol=1e-4, atol=1e-4), "clip-sdk differs"
        if hf is not None:
            assert torch.allclose(hf(pixel_values=pixels).image_embeds, expected, rtol=1e-4, atol=1e-4), "HF differs"
        cosine = F.cosine_similarity(ours_bf16.encode_image(pixels).float(), expected).min().item()
        runs = {"open_clip fp32": lambda: reference.encode_image(pixels)}
        if hf is not None:
            runs["transformers fp32"] = lambda: hf(pixel_values=pixels)
        runs["clip-sdk fp32"] = lambda: ours.encode_image(pixels)
        runs["clip-sdk to_bf16()"] = lambda: ours_bf16.encode_image(pixels)
        times = interleaved_seconds(runs, rounds)

    print(f"{name} image encoding, batch {batch}, {size}px, {torch.get_num_threads()} threads, {rounds} rounds")
    for label, seconds in times.items():
        print(f"  {label:28s} {batch / statistics.median(seconds):8.1f} images/s (median)")
    for label in ("clip-sdk fp32", "clip-sdk to_bf16()"):
        ratios = [f"vs open_clip fp32: {median_ratio(times['open_clip fp32'], times[label]):.2f}x"]
        if "transformers fp32" in times:
            ratios.append(f"vs transformers fp32: {median_ratio(times['transformers fp32'], times[label]):.2f}x")
        print(f"  {label}: " + "; ".join(ratios) + " (median of per-round ratios)")
    print(f"  bf16 cosine to fp32 features (min over batch): {cosine:.5f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cards", nargs="+", default=["ViT-B-32", "RN50"])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(2)
    for name in args.cards:
        bench_card(name, args.batch, args.rounds)


if __name__ == "__main__":
    main()
