"""Pieces of foreign-weight converters and exporters that transformer towers share.

A tower's converter (``converter(state_dict, config) -> dict[str, Tensor]``, registered with the tower kind) reads
keys with :func:`key_reader`, so that a missing key raises :class:`CheckpointError` naming it, and maps each
transformer block with :func:`openai_resblock` (OpenAI's / open_clip's ``ResidualAttentionBlock``) or
:func:`hf_encoder_layer` (transformers' ``CLIPEncoderLayer``) onto a timm-style block whose parameters
:data:`TIMM_BLOCK` names. A tower's exporter (``exporter(tower_state, config) -> dict[str, Tensor]``) goes the other
way with the inverses :func:`to_openai_resblock` and :func:`to_hf_encoder_layer`. The tensors outside the blocks are
listed once per layout as :class:`LayoutKey` tables, which :func:`from_layout` and :func:`to_layout` read in either
direction.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import torch
import torch.nn.functional as F

from clip_core.errors import CheckpointError

__all__ = [
    "SAME",
    "TIMM_BLOCK",
    "TRANSPOSED",
    "LayoutKey",
    "Reshape",
    "from_layout",
    "hf_encoder_layer",
    "key_reader",
    "openai_resblock",
    "resample_position_embedding",
    "to_hf_encoder_layer",
    "to_layout",
    "to_openai_resblock",
]

#: A transformer block's roles mapped to the names of their parameters in timm's ``Block``. A block naming them
#: otherwise passes its own mapping, e.g. ``{**TIMM_BLOCK, "fc1": "fc1", "fc2": "fc2"}``.
TIMM_BLOCK: Mapping[str, str] = MappingProxyType(
    {"norm1": "norm1", "qkv": "attn.qkv", "proj": "attn.proj", "norm2": "norm2", "fc1": "mlp.fc1", "fc2": "mlp.fc2"}
)

_PARTS = ("weight", "bias")

#: Each role's parameter in OpenAI's ``ResidualAttentionBlock``, ``{}`` standing for ``weight`` or ``bias``.
_OPENAI_RESBLOCK = {
    "norm1": "ln_1.{}",
    "qkv": "attn.in_proj_{}",
    "proj": "attn.out_proj.{}",
    "norm2": "ln_2.{}",
    "fc1": "mlp.c_fc.{}",
    "fc2": "mlp.c_proj.{}",
}

#: The same in transformers' ``CLIPEncoderLayer``, but for ``qkv``: three projections, concatenated q, k, v.
_HF_ENCODER_LAYER = {
    "norm1": "layer_norm1.{}",
    "proj": "self_attn.out_proj.{}",
    "norm2": "layer_norm2.{}",
    "fc1": "mlp.fc1.{}",
    "fc2": "mlp.fc2.{}",
}


@dataclass(frozen=True)
class Reshape:
    """How one tensor's shape differs between a foreign layout and ours: ``to_ours`` maps theirs to ours, ``to_theirs``
    back (each the other's inverse)."""

    to_ours: Callable[[torch.Tensor], torch.Tensor]
    to_theirs: Callable[[torch.Tensor], torch.Tensor]


#: The same shape in both layouts.
SAME = Reshape(lambda tensor: tensor, lambda tensor: tensor)
#: A projection stored ``[in, out]`` there (OpenAI's ``proj``, ``text_projection``), ``[out, in]`` here (``nn.Linear``).
TRANSPOSED = Reshape(lambda tensor: tensor.T.contiguous(), lambda tensor: tensor.T.contiguous())


@dataclass(frozen=True)
class LayoutKey:
    """One tensor outside the transformer blocks: its key in a tower's own state dict, its key in a foreign layout,
    and how its shape differs. A layout is a sequence of these, read in both directions by :func:`from_layout`
    (converters) and :func:`to_layout` (exporters)."""

    ours: str
    theirs: str
    reshape: Reshape = SAME


def from_layout(
    read: Callable[[str], torch.Tensor], keys: Iterable[LayoutKey], prefix: str = ""
) -> dict[str, torch.Tensor]:
    """The tensors ``keys`` lists, read (with ``read``, from :func:`key_reader`) under their foreign names preceded by
    ``prefix``, in the tower's own names and shapes."""
    return {key.ours: key.reshape.to_ours(read(prefix + key.theirs)) for key in keys}


def to_layout(
    read: Callable[[str], torch.Tensor], keys: Iterable[LayoutKey], prefix: str = ""
) -> dict[str, torch.Tensor]:
    """The inverse of :func:`from_layout`: the tower's tensors ``keys`` lists, under their foreign names preceded by
    ``prefix`` and in the foreign shapes."""
    return {prefix + key.theirs: key.reshape.to_theirs(read(key.ours)) for key in keys}


def key_reader(state: Mapping[str, torch.Tensor], description: str) -> Callable[[str], torch.Tensor]:
    """A reader of ``state``'s keys whose :class:`CheckpointError` for a missing key reads
    ``"<description>: missing key '<key>'"``; ``description`` says which layout and tower
    (``"OpenAI/open_clip image weights"``)."""

    def read(key: str) -> torch.Tensor:
        if key not in state:
            raise CheckpointError(f"{description}: missing key {key!r}")
        return state[key]

    return read


def _checked(names: Mapping[str, str]) -> Mapping[str, str]:
    if names.keys() != TIMM_BLOCK.keys():
        raise ValueError(f"block names must map exactly the roles {sorted(TIMM_BLOCK)}, not {sorted(names)}")
    return names


def openai_resblock(
    read: Callable[[str], torch.Tensor], source: str, target: str, names: Mapping[str, str] = TIMM_BLOCK
) -> dict[str, torch.Tensor]:
    """OpenAI's / open_clip's residual block under ``source`` (``"visual.transformer.resblocks.3."``) as the
    weights and biases of the block under ``target`` (``"trunk.blocks.3."``), whose parameters ``names`` names
    by role (see :data:`TIMM_BLOCK`)."""
    names = _checked(names)
    return {
        f"{target}{names[role]}.{part}": read(source + theirs.format(part))
        for role, theirs in _OPENAI_RESBLOCK.items()
        for part in _PARTS
    }


def hf_encoder_layer(
    read: Callable[[str], torch.Tensor], source: str, target: str, names: Mapping[str, str] = TIMM_BLOCK
) -> dict[str, torch.Tensor]:
    """transformers' ``CLIPEncoderLayer`` under ``source`` (``"vision_model.encoder.layers.3."``) as the weights and
    biases of the block under ``target``, whose parameters ``names`` names by role (see :data:`TIMM_BLOCK`); the
    separate q, k and v projections are concatenated, in that order, into the ``qkv`` role's parameters."""
    names = _checked(names)
    out: dict[str, torch.Tensor] = {}
    for part in _PARTS:
        out[f"{target}{names['qkv']}.{part}"] = torch.cat([read(f"{source}self_attn.{p}_proj.{part}") for p in "qkv"])
        for role, theirs in _HF_ENCODER_LAYER.items():
            out[f"{target}{names[role]}.{part}"] = read(source + theirs.format(part))
    return out


def resample_position_embedding(embedding: torch.Tensor, grid: tuple[int, int], prefix: int = 1) -> torch.Tensor:
    """A learned position embedding ``[prefix + h * w, C]`` of a square grid, resampled to ``grid``: the ``prefix``
    tokens (a class token, a ResNet's mean token) kept as they are, the grid's embeddings resized as an image
    (bicubic, antialiased, corners not aligned), exactly as open_clip's ``resize_pos_embed`` does on load.

    Returns ``embedding`` itself when it already has ``grid``; :class:`CheckpointError` when its grid is not square.
    """
    tokens, cells = embedding[:prefix], embedding[prefix:]
    if cells.shape[0] == grid[0] * grid[1]:
        return embedding
    side = math.isqrt(cells.shape[0])
    if side * side != cells.shape[0]:
        raise CheckpointError(
            f"a position embedding of {embedding.shape[0]} tokens ({prefix} + {cells.shape[0]}) holds no square grid "
            f"to resample to {grid[0]}x{grid[1]}"
        )
    image = cells.reshape(1, side, side, -1).permute(0, 3, 1, 2)
    image = F.interpolate(image, size=grid, mode="bicubic", antialias=True, align_corners=False)
    return torch.cat([tokens, image.permute(0, 2, 3, 1).reshape(grid[0] * grid[1], -1)], dim=0)


def to_openai_resblock(
    read: Callable[[str], torch.Tensor], source: str, target: str, names: Mapping[str, str] = TIMM_BLOCK
) -> dict[str, torch.Tensor]:
    """The inverse of :func:`openai_resblock`: the block under ``source`` (``"trunk.blocks.3."`` of a tower's own
    state dict, parameters named by role in ``names``) as OpenAI's / open_clip's residual block under ``target``
    (``"visual.transformer.resblocks.3."``)."""
    names = _checked(names)
    return {
        target + theirs.format(part): read(f"{source}{names[role]}.{part}")
        for role, theirs in _OPENAI_RESBLOCK.items()
        for part in _PARTS
    }


def to_hf_encoder_layer(
    read: Callable[[str], torch.Tensor], source: str, target: str, names: Mapping[str, str] = TIMM_BLOCK
) -> dict[str, torch.Tensor]:
    """The inverse of :func:`hf_encoder_layer`: the block under ``source`` as transformers' ``CLIPEncoderLayer``
    under ``target`` (``"vision_model.encoder.layers.3."``), the ``qkv`` role's parameters split into equal q, k and
    v projections."""
    names = _checked(names)
    out: dict[str, torch.Tensor] = {}
    for part in _PARTS:
        for p, tensor in zip("qkv", read(f"{source}{names['qkv']}.{part}").chunk(3), strict=True):
            out[f"{target}self_attn.{p}_proj.{part}"] = tensor.contiguous()
        for role, theirs in _HF_ENCODER_LAYER.items():
            out[target + theirs.format(part)] = read(f"{source}{names[role]}.{part}")
    return out
