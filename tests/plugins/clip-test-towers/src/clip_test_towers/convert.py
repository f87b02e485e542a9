"""Converters from a small OpenAI-like layout (``visual.conv``, ``visual.ln``, ``visual.proj`` as ``[width, embed]``;
``token_embedding``, ``ln_final``, ``text_projection``) to the test towers' own."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from clip_core.converters import key_reader
from clip_test_towers.model import BagOfWordsConfig, PatchMeanConfig

State = Mapping[str, torch.Tensor]


def convert_patch_mean(state: State, config: PatchMeanConfig) -> dict[str, torch.Tensor]:
    read = key_reader(state, "openai-like weights")
    return {
        "patch.weight": read("visual.conv.weight"),
        "patch.bias": read("visual.conv.bias"),
        "norm.weight": read("visual.ln.weight"),
        "norm.bias": read("visual.ln.bias"),
        "proj.weight": read("visual.proj").T,
    }


def convert_bag_of_words(state: State, config: BagOfWordsConfig) -> dict[str, torch.Tensor]:
    read = key_reader(state, "openai-like weights")
    return {
        "embed.weight": read("token_embedding.weight"),
        "norm.weight": read("ln_final.weight"),
        "norm.bias": read("ln_final.bias"),
        "proj.weight": read("text_projection").T,
    }


def export_patch_mean(tower: State, config: PatchMeanConfig) -> dict[str, torch.Tensor]:
    """The exporter of `patch-mean`, the inverse of :func:`convert_patch_mean` (`bag-of-words` has none, so that
    tests see a kind without exporters)."""
    return {
        "visual.conv.weight": tower["patch.weight"],
        "visual.conv.bias": tower["patch.bias"],
        "visual.ln.weight": tower["norm.weight"],
        "visual.ln.bias": tower["norm.bias"],
        "visual.proj": tower["proj.weight"].T.contiguous(),
    }


def to_openai_like(native: State) -> dict[str, torch.Tensor]:
    """The inverse: a ``ClipModel`` state dict of these towers in the OpenAI-like layout (for tests)."""
    names = {
        "visual.patch.weight": "visual.conv.weight",
        "visual.patch.bias": "visual.conv.bias",
        "visual.norm.weight": "visual.ln.weight",
        "visual.norm.bias": "visual.ln.bias",
        "text.embed.weight": "token_embedding.weight",
        "text.norm.weight": "ln_final.weight",
        "text.norm.bias": "ln_final.bias",
        "logit_scale": "logit_scale",
    }
    out = {names[key]: value for key, value in native.items() if key in names}
    out["visual.proj"] = native["visual.proj.weight"].T.contiguous()
    out["text_projection"] = native["text.proj.weight"].T.contiguous()
    return out
