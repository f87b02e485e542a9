"""Text encoding throughput: clip-sdk vs open_clip vs transformers on the same weights, in one run.

Typical zero-shot prompts ("a photo of a {label}."), batch 256, the ViT-B-32 text tower (width 512, 12 layers,
8 heads), 2 threads. open_clip always runs all 77 positions; transformers gets inputs padded to the longest text;
clip-sdk (a ViT-B-32 ``ClipModel`` holding the same text weights, ``encode_text``) cuts the batch to the longest text
itself, in fp32 and converted by ``model.to_bf16()`` (bf16 weights but LayerNorm's, which stay and compute in fp32).
The variants run interleaved, round after round, so a busy neighbour slows them alike; prints median texts/s, the
median of per-round ratios, and the bf16 cosine to fp32.

    python benchmarks/bench_text_encoder.py [--batch 256] [--rounds 5]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
from pathlib import Path

import open_clip
import torch
import torch.nn.functional as F
import transformers

import clip_core
from clip_core.converters import TIMM_BLOCK
from clip_encoders_text.build import convert_openai
from clip_encoders_text.model import TextTransformer, TextTransformerConfig

sys.path.insert(0, str(Path(__file__).parent))
from _layouts import hf_encoder_layer_from_ours
from _timing import interleaved_seconds, median_ratio

LABELS = ("cat", "dog", "car", "airplane", "bird", "ship", "truck", "horse", "deer", "frog", "apple", "tiger")
TEXT_CFG = {"context_length": 77, "vocab_size": 49408, "width": 512, "heads": 8, "layers": 12}
EOT = 49407


def hf_state_from_ours(tower: TextTransformer) -> dict[str, torch.Tensor]:
    """Our weights in transformers' CLIPTextModelWithProjection layout (the inverse of `convert_hf`)."""
    ours = tower.state_dict()
    root = "text_model."
    state = {
        f"{root}embeddings.token_embedding.weight": ours["token_embedding.weight"],
        f"{root}embeddings.position_embedding.weight": ours["positional_embedding"],
        f"{root}final_layer_norm.weight": ours["ln_final.weight"],
        f"{root}final_layer_norm.bias": ours["ln_final.bias"],
        "text_projection.weight": ours["text_projection.weight"],
    }
    names = {**TIMM_BLOCK, "fc1": "fc1", "fc2": "fc2"}  # this tower's MLP sits on the block itself
    for i in range(len(tower.blocks)):
        state |= hf_encoder_layer_from_ours(ours, f"blocks.{i}.", f"{root}encoder.layers.{i}.", names)
    return state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)

    reference = open_clip.model.CLIP(
        embed_dim=512, vision_cfg={"image_size": 32, "layers": 1, "width": 64, "patch_size": 16}, text_cfg=TEXT_CFG
    ).eval()
    ours = clip_core.create_model("ViT-B-32").eval()
    config = ours.card.text
    assert isinstance(config, TextTransformerConfig) and isinstance(ours.text, TextTransformer)
    assert config == TextTransformerConfig(width=512, layers=12, heads=8), config
    ours.text.load_state_dict(convert_openai(reference.state_dict(), config))
    hf = transformers.CLIPTextModelWithProjection(
        transformers.CLIPTextConfig(
            hidden_size=512,
            intermediate_size=2048,
            num_hidden_layers=12,
            num_attention_heads=8,
            projection_dim=512,
            hidden_act="gelu",
            layer_norm_eps=1e-5,
            eos_token_id=EOT,
        )
    ).eval()
    hf.load_state_dict(hf_state_from_ours(ours.text), strict=False)

    prompts = [f"a photo of a {LABELS[i % len(LABELS)]}." for i in range(args.batch)]
    ids = open_clip.tokenize(prompts)
    longest = int(ids.argmax(dim=-1).max()) + 1
    hf_ids = ids[:, :longest].masked_fill(ids[:, :longest] == 0, EOT)

    ours_bf16 = copy.deepcopy(ours).to_bf16()
    with torch.inference_mode():
        expected = reference.encode_text(ids)
        fp32 = ours.encode_text(ids)
        assert torch.allclose(fp32, expected, rtol=1e-4, atol=1e-4), "clip-sdk differs from open_clip"
        assert torch.allclose(hf(input_ids=hf_ids).text_embeds, expected, rtol=1e-4, atol=1e-4), "transformers differs"
        cosine = F.cosine_similarity(ours_bf16.encode_text(ids).float(), fp32).min().item()
        runs = {
            "open_clip fp32": lambda: reference.encode_text(ids),
            "transformers fp32 (padded to longest)": lambda: hf(input_ids=hf_ids),
            "clip-sdk fp32": lambda: ours.encode_text(ids),
            "clip-sdk to_bf16()": lambda: ours_bf16.encode_text(ids),
        }
        times = interleaved_seconds(runs, args.rounds)

    threads = torch.get_num_threads()
    print(f"text encoding, batch {args.batch}, {longest} of 77 positions used, {threads} threads, {args.rounds} rounds")
    for name, seconds in times.items():
        print(f"  {name:40s} {args.batch / statistics.median(seconds):9.0f} texts/s (median)")
    base, hf_base = times["open_clip fp32"], times["transformers fp32 (padded to longest)"]
    for name in ("clip-sdk fp32", "clip-sdk to_bf16()"):
        print(
            f"  {name} vs open_clip fp32: {median_ratio(base, times[name]):.2f}x; vs transformers fp32: "
            f"{median_ratio(hf_base, times[name]):.2f}x (median of per-round ratios)"
        )
    print(f"  bf16 cosine to fp32 features (min over batch): {cosine:.5f}")


if __name__ == "__main__":
    main()
