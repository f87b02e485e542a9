"""What a training updates and how: the parameters it freezes, and AdamW over two parameter groups, weights with
weight decay and the rest without."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from clip_core.errors import InputError
from clip_core.model import ClipModel
from clip_core.training.config import TrainConfig

__all__ = ["adamw", "freeze_untrained", "parameter_groups", "split_weight_decay"]

_NORMS: tuple[type[nn.Module], ...] = (
    nn.LayerNorm,
    nn.GroupNorm,
    nn.LocalResponseNorm,
    nn.modules.batchnorm._NormBase,
    *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()),
)
_EMBEDDINGS: tuple[type[nn.Module], ...] = (nn.Embedding, nn.EmbeddingBag)


def freeze_untrained(model: ClipModel, freeze: str | None, loss_inputs: frozenset[str]) -> None:
    """Freeze what a training does not update: the ``freeze`` tower (``"image"`` or ``"text"``, also put in eval
    mode), and the logit scale and bias unless the loss takes them (``"scale"``, ``"bias"`` in ``loss_inputs``)."""
    if freeze is not None:
        frozen = model.visual if freeze == "image" else model.text
        frozen.requires_grad_(False)
        frozen.eval()
    if "scale" not in loss_inputs:
        model.logit_scale.requires_grad_(False)
    if model.logit_bias is not None and "bias" not in loss_inputs:
        model.logit_bias.requires_grad_(False)


def split_weight_decay(model: nn.Module) -> tuple[list[str], list[str]]:
    """Names of the trainable parameters that get weight decay, and of those that do not.

    No decay: biases and any parameter with fewer than two dimensions; every parameter of a normalisation layer
    (LayerNorm, GroupNorm, BatchNorm, RMSNorm...) or an embedding table; learned embeddings and tokens held as
    parameters (a last name part containing ``embed`` or ``token``: ``pos_embed``, ``positional_embedding``,
    ``cls_token``...); the logit scale and bias. Frozen parameters are in neither list.

    This is timm's rule (its models' ``no_weight_decay()``: position embeddings and class tokens) and GPT-2-style
    training's, not open_clip's: open_clip exempts only parameters with fewer than two dimensions and names
    containing ``bn``, ``ln``, ``bias`` or ``logit_scale``, so it decays the token and position embeddings (2-D).
    We spare them deliberately: a token's embedding row gets a gradient only in batches holding that token, while
    decay shrinks every row at every step, so rare tokens' embeddings would decay towards zero between their
    appearances; position embeddings are inputs to be learned, not weights to regularise. The rule goes by module
    type and the embedding names, not by abbreviations in a layout's names, so it holds for any tower plugin. For
    open_clip's exact rule, pass your own parameter groups to AdamW.
    """
    exempt: set[int] = set()
    for module in model.modules():
        if isinstance(module, _NORMS + _EMBEDDINGS):
            exempt.update(id(parameter) for parameter in module.parameters(recurse=False))
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        leaf = name.rsplit(".", 1)[-1]
        if (
            parameter.ndim < 2
            or id(parameter) in exempt
            or leaf.endswith("bias")
            or "embed" in leaf
            or "token" in leaf
            or name in ("logit_scale", "logit_bias")
        ):
            no_decay.append(name)
        else:
            decay.append(name)
    return decay, no_decay


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW parameter groups: ``weight_decay`` for weights, none for the rest (see :func:`split_weight_decay`).

    Empty groups are left out.
    """
    parameters = dict(model.named_parameters())
    decay, no_decay = split_weight_decay(model)
    groups = [
        {"params": [parameters[name] for name in decay], "weight_decay": weight_decay},
        {"params": [parameters[name] for name in no_decay], "weight_decay": 0.0},
    ]
    return [group for group in groups if group["params"]]


def adamw(model: nn.Module, config: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW over :func:`parameter_groups` with ``config``'s learning rate, betas and eps.

    The fused kernel where this torch has one for ``device`` (CPU since torch 2.4); :class:`InputError` when every
    parameter is frozen.
    """
    groups = parameter_groups(model, config.weight_decay)
    if not groups:
        raise InputError("nothing to train: every parameter is frozen")
    options: dict[str, Any] = {"lr": config.lr, "betas": config.betas, "eps": config.eps}
    cpu_fused = tuple(int(part) for part in torch.__version__.split("+")[0].split(".")[:2]) >= (2, 4)
    try:  # the fused kernel, where this torch has one for the device (CPU since torch 2.4)
        return torch.optim.AdamW(groups, fused=device.type == "cuda" or (device.type == "cpu" and cpu_fused), **options)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(groups, **options)
