"""Card to module, and weights from OpenAI's / open_clip's layout to ours and back.

Only one foreign layout exists for this tower: OpenAI's, which open_clip keeps (and which OpenAI's TorchScript
archives hold). Hugging Face transformers has no ResNet CLIP.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

import torch

from clip_core.converters import key_reader
from clip_encoders_resnet.config import ModifiedResNetConfig

if TYPE_CHECKING:
    from clip_encoders_resnet.model import ModifiedResNet

__all__ = ["build_modified_resnet", "convert_openai", "export_openai", "openai_names"]

State = Mapping[str, torch.Tensor]

_BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
#: OpenAI's bottleneck convolutions (conv1/bn1, ...) and timm's names for them.
_BLOCK_CONVS = {1: "conv1_1x1", 2: "conv2_kxk", 3: "conv3_1x1"}


def build_modified_resnet(config: ModifiedResNetConfig, embed_dim: int) -> ModifiedResNet:
    """Build the image tower a `modified-resnet` config describes (timm is imported here, not at plugin discovery)."""
    from clip_encoders_resnet.model import ModifiedResNet

    return ModifiedResNet(config, embed_dim)


def _conv_bn(ours: str, theirs_conv: str, theirs_bn: str) -> Iterator[tuple[str, str]]:
    yield f"{ours}.conv.weight", f"{theirs_conv}.weight"
    for part in _BN:
        yield f"{ours}.bn.{part}", f"{theirs_bn}.{part}"


def openai_names(config: ModifiedResNetConfig) -> dict[str, str]:
    """Every key of the tower's state dict, mapped to its name in OpenAI's layout (without the ``visual.``)."""
    names: dict[str, str] = {}
    for i in (1, 2, 3):
        names.update(_conv_bn(f"trunk.stem.conv{i}", f"conv{i}", f"bn{i}"))
    for stage, depth in enumerate(config.layers):
        for block in range(depth):
            ours, theirs = f"trunk.stages.{stage}.{block}", f"layer{stage + 1}.{block}"
            for i, conv in _BLOCK_CONVS.items():
                names.update(_conv_bn(f"{ours}.{conv}", f"{theirs}.conv{i}", f"{theirs}.bn{i}"))
            if block == 0:  # every stage's first block changes width (and, after the first stage, resolution)
                names.update(_conv_bn(f"{ours}.shortcut.conv", f"{theirs}.downsample.0", f"{theirs}.downsample.1"))
    for name in ("positional_embedding", *(f"{p}_proj.{w}" for p in "qkvc" for w in ("weight", "bias"))):
        names[f"attnpool.{name}"] = f"attnpool.{name}"
    return names


def convert_openai(state: State, config: ModifiedResNetConfig) -> dict[str, torch.Tensor]:
    """A whole CLIP model's state dict in OpenAI's / open_clip's layout (image tower under ``visual.``:
    ``visual.conv1.weight``, ``visual.bn1.*``, ``visual.layer1.0.conv1.weight``, ``visual.layer1.0.downsample.0/1``,
    ``visual.attnpool.q_proj.*``, ...) to this tower's state dict.

    BatchNorm's ``num_batches_tracked`` counters are taken when the source has them and are zero otherwise.
    """
    read = key_reader(state, "OpenAI/open_clip image weights")
    out: dict[str, torch.Tensor] = {}
    for ours, theirs in openai_names(config).items():
        key = f"visual.{theirs}"
        if key not in state and ours.endswith(".num_batches_tracked"):
            out[ours] = torch.zeros((), dtype=torch.long)
        else:
            out[ours] = read(key)
    return out


def export_openai(tower: State, config: ModifiedResNetConfig) -> dict[str, torch.Tensor]:
    """The inverse of :func:`convert_openai`: the tower's state dict in OpenAI's / open_clip's layout."""
    read = key_reader(tower, "modified-resnet tower weights")
    return {f"visual.{theirs}": read(ours) for ours, theirs in openai_names(config).items()}
