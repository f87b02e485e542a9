"""The text tower gives open_clip's and transformers' features on the same random weights (relative error ≤ 1e-5)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import clip_core
from clip_encoders_text.build import convert_hf, convert_openai
from clip_encoders_text.model import TextTransformerConfig

open_clip = pytest.importorskip("open_clip")
transformers = pytest.importorskip("transformers")

SOT, EOT = 49406, 49407
SHAPES = [
    {"width": 64, "layers": 2, "heads": 4, "activation": "gelu"},
    {"width": 96, "layers": 3, "heads": 6, "activation": "quick_gelu"},
    {"width": 128, "layers": 1, "heads": 2, "activation": "gelu", "context_length": 32},
]


def token_batch(context: int, seed: int = 0) -> torch.Tensor:
    """Texts of every length from empty to full context, zero padded, as open_clip.tokenize lays them out."""
    generator = torch.Generator().manual_seed(seed)
    lengths = [0, 1, 5, context // 2, context - 2]
    ids = torch.zeros(len(lengths), context, dtype=torch.long)
    for row, n in enumerate(lengths):
        ids[row, 0] = SOT
        ids[row, 1 : n + 1] = torch.randint(1, SOT, (n,), generator=generator)
        ids[row, n + 1] = EOT
    return ids


def relative_error(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return float((ours - reference).abs().max() / reference.abs().max())


def our_tower(shape: dict[str, Any], embed_dim: int, state: dict[str, torch.Tensor]) -> torch.nn.Module:
    config = TextTransformerConfig.model_validate(shape)
    tower = clip_core.build_tower(config, embed_dim).eval()
    tower.load_state_dict(state, strict=True)
    return tower


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"w{s['width']}-l{s['layers']}-{s['activation']}")
def test_features_match_open_clip_text_tower(shape: dict[str, Any]) -> None:
    torch.manual_seed(0)
    context = shape.get("context_length", 77)
    text_cfg = {
        "context_length": context,
        "vocab_size": 49408,
        "width": shape["width"],
        "heads": shape["heads"],
        "layers": shape["layers"],
    }
    vision_cfg = {"image_size": 32, "layers": 1, "width": 64, "patch_size": 16}
    reference = open_clip.model.CLIP(
        embed_dim=48, vision_cfg=vision_cfg, text_cfg=text_cfg, quick_gelu=shape["activation"] == "quick_gelu"
    ).eval()
    config = TextTransformerConfig.model_validate(shape)
    tower = our_tower(shape, 48, convert_openai(reference.state_dict(), config))
    ids = token_batch(context)
    with torch.no_grad():
        expected, ours = reference.encode_text(ids), tower(ids)
    assert relative_error(ours, expected) <= 1e-5


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"w{s['width']}-l{s['layers']}-{s['activation']}")
def test_features_match_transformers_get_text_features(shape: dict[str, Any]) -> None:
    torch.manual_seed(0)
    context = shape.get("context_length", 77)
    text_config = {
        "vocab_size": 49408,
        "hidden_size": shape["width"],
        "intermediate_size": 4 * shape["width"],
        "num_hidden_layers": shape["layers"],
        "num_attention_heads": shape["heads"],
        "max_position_embeddings": context,
        "hidden_act": shape["activation"],
        "layer_norm_eps": 1e-5,
        "eos_token_id": EOT,
        "bos_token_id": SOT,
    }
    vision_config = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "image_size": 32,
        "patch_size": 16,
    }
    reference = transformers.CLIPModel(
        transformers.CLIPConfig(text_config=text_config, vision_config=vision_config, projection_dim=40)
    ).eval()
    config = TextTransformerConfig.model_validate(shape)
    tower = our_tower(shape, 40, convert_hf(reference.state_dict(), config))
    ids = token_batch(context, seed=1)
    hf_ids = torch.where(ids == 0, torch.full_like(ids, EOT), ids)  # transformers pads with the end token
    with torch.no_grad():
        features = reference.get_text_features(input_ids=hf_ids)
        expected = features if isinstance(features, torch.Tensor) else features.pooler_output
        ours = tower(ids)
    assert relative_error(ours, expected) <= 1e-5


def test_converters_name_a_missing_key() -> None:
    config = TextTransformerConfig(width=64, layers=2, heads=4)
    vision_cfg = {"image_size": 32, "layers": 1, "width": 64, "patch_size": 16}
    full = open_clip.model.CLIP(embed_dim=8, vision_cfg=vision_cfg, text_cfg={"width": 64, "layers": 2, "heads": 4})
    state = {k: v for k, v in full.state_dict().items() if "resblocks.1.ln_1" not in k}
    with pytest.raises(clip_core.CheckpointError, match=r"missing key 'transformer\.resblocks\.1\.ln_1\.weight'"):
        convert_openai(state, config)
