"""Dense features: the outputs of a model's inner blocks, for segmentation, detection and attribution work.

``ClipModel.forward_intermediates`` takes open_clip's arguments and returns open_clip's keys
(``image_intermediates``, ``image_features``, ``text_intermediates``, ``text_features``, ...). Each tower provides its
part through the optional tower method ``forward_intermediates`` (:class:`clip_core.protocols.IntermediatesEncoder`),
returning a :class:`TowerIntermediates`; :func:`take_indices` turns the ``indices`` argument into block numbers, for
every tower alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F
from torch import nn

from clip_core.errors import InputError, PluginError

if TYPE_CHECKING:
    from clip_core.model import ClipModel

__all__ = ["Indices", "TowerIntermediates", "forward_intermediates", "take_indices", "to_output_format"]

#: Which blocks to return: None for all, an int ``n`` for the last ``n``, or a sequence of block numbers (negative
#: numbers count from the end), as open_clip and timm take them.
Indices = int | Sequence[int] | None

ImageFormat = Literal["NCHW", "NLC"]


@dataclass
class TowerIntermediates:
    """What a tower's ``forward_intermediates`` returns."""

    #: The requested blocks' outputs, in block order: ``[B, C, H, W]`` (NCHW) or ``[B, L, C]`` (NLC).
    intermediates: list[torch.Tensor]
    #: The tower's output ``[B, embed_dim]`` (as its forward computes it), or None with ``intermediates_only``.
    features: torch.Tensor | None = None
    #: Tokens the intermediates leave out, one ``[B, n, C]`` per block (a ViT's class token), when asked for.
    extra_tokens: list[torch.Tensor] | None = None


def take_indices(count: int, indices: Indices, what: str = "block") -> tuple[list[int], int]:
    """The block numbers ``indices`` selects among ``count`` blocks, and the largest of them.

    ``None`` selects all, an int ``n`` the last ``n`` and a sequence the blocks it names (``-1`` is the last);
    :class:`InputError` naming the valid range for anything else.
    """
    if indices is None:
        indices = count
    if isinstance(indices, (bool, str)) or not isinstance(indices, (int, Sequence)):
        raise InputError(f"{what} indices must be None, an int or a list of ints, got {indices!r}")
    if isinstance(indices, int):
        if not 0 < indices <= count:
            raise InputError(f"the last {indices} {what}s: this tower has {count} (ask for 1 to {count})")
        taken = list(range(count - indices, count))
    else:
        taken = []
        for index in indices:
            if isinstance(index, bool) or not isinstance(index, int) or not -count <= index < count:
                raise InputError(f"{what} index {index!r} is out of range: this tower has {count} (0 to {count - 1})")
            taken.append(index % count)
        if not taken:
            raise InputError(f"{what} indices: an empty list selects nothing")
    return taken, max(taken)


def to_output_format(tokens: torch.Tensor, grid: tuple[int, int], output_fmt: str) -> torch.Tensor:
    """Spatial tokens ``[B, H*W, C]`` as ``[B, C, H, W]`` (``"NCHW"``) or unchanged (``"NLC"``)."""
    if output_fmt == "NLC":
        return tokens
    if output_fmt == "NCHW":
        batch, _, channels = tokens.shape
        return tokens.reshape(batch, grid[0], grid[1], channels).permute(0, 3, 1, 2).contiguous()
    raise InputError(f"output format must be 'NCHW' or 'NLC', got {output_fmt!r}")


def forward_intermediates(
    model: ClipModel,
    image: torch.Tensor | None = None,
    text: torch.Tensor | None = None,
    image_indices: Indices = None,
    text_indices: Indices = None,
    stop_early: bool = False,
    normalize: bool = True,
    normalize_intermediates: bool = False,
    intermediates_only: bool = False,
    image_output_fmt: str = "NCHW",
    image_output_extra_tokens: bool = False,
    text_output_fmt: str = "NLC",
    text_output_extra_tokens: bool = False,
    output_logits: bool = False,
    output_logit_scale_bias: bool = False,
) -> dict[str, torch.Tensor | list[torch.Tensor]]:
    """``ClipModel.forward_intermediates`` (see there)."""
    if intermediates_only:  # as open_clip: no features, so nothing to normalise or score
        normalize, output_logits = False, False
    if output_logits and (image is None or text is None):
        raise InputError("output_logits needs both an image and a text batch")
    if text_output_fmt != "NLC":
        raise InputError(f"text intermediates come as NLC only, got text_output_fmt={text_output_fmt!r}")
    output: dict[str, torch.Tensor | list[torch.Tensor]] = {}
    for modality, inputs, indices, fmt, extra in (
        ("image", image, image_indices, image_output_fmt, image_output_extra_tokens),
        ("text", text, text_indices, text_output_fmt, text_output_extra_tokens),
    ):
        if inputs is None:
            continue
        inputs = model.image_input(inputs) if modality == "image" else model.text_input(inputs)
        tower: nn.Module = getattr(model, "visual" if modality == "image" else "text")
        result = _tower_intermediates(
            model, modality, tower, inputs, indices, stop_early, normalize_intermediates, intermediates_only, fmt, extra
        )
        output[f"{modality}_intermediates"] = result.intermediates
        if extra and result.extra_tokens:  # a tower without extra tokens adds no key, as open_clip's
            output[f"{modality}_intermediates_{'prefix' if modality == 'image' else 'suffix'}"] = result.extra_tokens
        if result.features is not None and not intermediates_only:
            features = result.features
            output[f"{modality}_features"] = F.normalize(features, dim=-1) if normalize else features
    scale = model.logit_scale.exp() if output_logits or output_logit_scale_bias else None
    if output_logits and scale is not None:
        image_features, text_features = output["image_features"], output["text_features"]
        assert isinstance(image_features, torch.Tensor) and isinstance(text_features, torch.Tensor)
        logits = scale * image_features @ text_features.to(image_features.dtype).T
        if model.logit_bias is not None:
            logits = logits + model.logit_bias
        output["image_logits"], output["text_logits"] = logits, logits.T
    if output_logit_scale_bias and scale is not None:
        output["logit_scale"] = scale
        if model.logit_bias is not None:
            output["logit_bias"] = model.logit_bias
    return output


def _tower_intermediates(
    model: ClipModel,
    modality: str,
    tower: nn.Module,
    inputs: torch.Tensor,
    indices: Indices,
    stop_early: bool,
    normalize_intermediates: bool,
    intermediates_only: bool,
    output_fmt: str,
    extra_tokens: bool,
) -> TowerIntermediates:
    method = getattr(tower, "forward_intermediates", None)
    config = getattr(model.card, modality)
    if not callable(method):
        from clip_core import registry

        plugin = registry.tower_kind(config.kind).plugin
        raise PluginError(
            f"the {modality} tower of card {model.card.name!r} (kind {config.kind!r}, plugin {plugin!r}) does not "
            "provide forward_intermediates, so its intermediate features cannot be read; its plugin would need to "
            "implement the tower method (see 'Dense features' in the plugin documentation)"
        )
    result = method(
        inputs,
        indices=indices,
        stop_early=stop_early,
        normalize_intermediates=normalize_intermediates,
        intermediates_only=intermediates_only,
        output_fmt=output_fmt,
        output_extra_tokens=extra_tokens,
    )
    if not isinstance(result, TowerIntermediates):
        raise PluginError(
            f"the {modality} tower kind {config.kind!r} returned a {type(result).__name__} from forward_intermediates, "
            "not a clip_core.intermediates.TowerIntermediates"
        )
    return result
