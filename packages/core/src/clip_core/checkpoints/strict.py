"""Strict state-dict loading: every key present, none extra, every shape right, or a CheckpointError naming them."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import torch
from torch import nn

from clip_core.errors import CheckpointError

if TYPE_CHECKING:
    from clip_core.cards import ModelCard
    from clip_core.model import ClipModel

__all__ = ["check_fits", "fit_to_towers", "listing", "load_state_dict_strict", "model_from_state", "skeleton"]

_SHOWN = 8


def listing(keys: Iterable[str]) -> str:
    """Sorted keys, the first few shown and the rest counted."""
    keys = sorted(keys)
    shown = ", ".join(keys[:_SHOWN])
    return shown + (f" and {len(keys) - _SHOWN} more" if len(keys) > _SHOWN else "")


def check_fits(expected: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor], source: str) -> None:
    """:class:`CheckpointError` listing the keys of ``state`` that are missing, unexpected or mis-shaped."""
    missing = expected.keys() - state.keys()
    unexpected = state.keys() - expected.keys()
    misshaped = [
        f"{key} {tuple(state[key].shape)} (model has {tuple(expected[key].shape)})"
        for key in sorted(expected.keys() & state.keys())
        if tuple(state[key].shape) != tuple(expected[key].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {listing(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {listing(unexpected)}")
    if misshaped:
        problems.append(f"mis-shaped keys: {listing(misshaped)}")
    if problems:
        raise CheckpointError(f"{source} does not fit the model: " + "; ".join(problems))


def load_state_dict_strict(module: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Copy ``state`` into ``module``; a :class:`CheckpointError` lists missing, unexpected and mis-shaped keys."""
    check_fits(module.state_dict(), state, source)
    module.load_state_dict(state, strict=True)


def skeleton(card: ModelCard) -> ClipModel:
    """A ``ClipModel`` for ``card`` whose weights are not initialised yet: built on the meta device, so no time
    goes into a random initialisation that loading would overwrite (seconds for the largest cards). A tower that
    cannot be built there (a third-party tower doing real work in ``__init__``) is built normally instead."""
    from clip_core.model import ClipModel

    try:
        with torch.device("meta"):
            return ClipModel(card)
    except Exception:
        return ClipModel(card)


def model_from_state(
    card: ModelCard, state: Mapping[str, torch.Tensor], source: str, model: ClipModel | None = None
) -> ClipModel:
    """A ``ClipModel`` for ``card`` holding ``state`` (strictly checked), in eval mode.

    ``model`` is a :func:`skeleton` for ``card`` if the caller already has one. Each weight keeps the dtype and
    memory format (e.g. channels_last) the tower chose. A tower that keeps state outside its state dict (which
    would stay uninitialised on the meta device) is built normally and the weights copied in.
    """
    from clip_core.model import ClipModel

    model = skeleton(card) if model is None else model
    state = fit_to_towers(model, state)
    expected = model.state_dict()
    check_fits(expected, state, source)
    if not any(tensor.is_meta for tensor in expected.values()):
        model.load_state_dict(state, strict=True)
        return model.eval()
    model.load_state_dict({key: _laid_out_like(expected[key], value) for key, value in state.items()}, assign=True)
    if any(tensor.is_meta for tensor in itertools.chain(model.parameters(), model.buffers())):
        model = ClipModel(card)
        model.load_state_dict(state, strict=True)
    return model.eval()


def fit_to_towers(model: ClipModel, state: Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
    """``state`` with each tower's part passed through the tower's ``fit_state_dict`` when it has one (optional): a
    tower adapts weights made for another size of itself, e.g. resamples a position embedding to its grid."""
    for prefix, tower in (("visual.", model.visual), ("text.", model.text)):
        fit = getattr(tower, "fit_state_dict", None)
        if not callable(fit):
            continue
        part = {key[len(prefix) :]: value for key, value in state.items() if key.startswith(prefix)}
        fitted = fit(part)
        rest = {key: value for key, value in state.items() if not key.startswith(prefix)}
        state = rest | {prefix + key: value for key, value in fitted.items()}
    return state


#: The alignment torch's CPU allocator gives every tensor. Weights read from a file can sit at any offset of the
#: file's buffer; kernels may vectorise differently over unaligned memory and round differently, so such weights are
#: copied into fresh (aligned) memory to compute exactly as a model built in this process does.
_ALIGNMENT = 64


def _laid_out_like(template: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    if (
        value.dtype == template.dtype
        and value.stride() == template.stride()
        and not value.requires_grad
        and value.data_ptr() % _ALIGNMENT == 0
    ):
        return value
    out = torch.empty_strided(template.shape, template.stride(), dtype=template.dtype)
    with torch.no_grad():
        return out.copy_(value)
