"""Our transformer blocks' weights in transformers' ``CLIPEncoderLayer`` layout, for the benchmarks to load the same
weights into transformers: the inverse of :func:`clip_core.converters.hf_encoder_layer`."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from clip_core.converters import TIMM_BLOCK

#: Each block role's module in transformers' CLIPEncoderLayer, but for ``qkv`` (split into q, k and v).
_HF_LAYER = {
    "norm1": "layer_norm1",
    "proj": "self_attn.out_proj",
    "norm2": "layer_norm2",
    "fc1": "mlp.fc1",
    "fc2": "mlp.fc2",
}


def hf_encoder_layer_from_ours(
    ours: Mapping[str, torch.Tensor], source: str, target: str, names: Mapping[str, str] = TIMM_BLOCK
) -> dict[str, torch.Tensor]:
    """Our block under ``source`` (parameters named by role as in ``names``) as transformers' layer ``target``."""
    state = {}
    for part in ("weight", "bias"):
        for name, chunk in zip("qkv", ours[f"{source}{names['qkv']}.{part}"].chunk(3), strict=True):
            state[f"{target}self_attn.{name}_proj.{part}"] = chunk
        for role, theirs in _HF_LAYER.items():
            state[f"{target}{theirs}.{part}"] = ours[f"{source}{names[role]}.{part}"]
    return state
