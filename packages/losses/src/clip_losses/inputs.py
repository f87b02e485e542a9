"""Checking what a loss is given: paired embedding batches and scalar temperatures or biases."""

from __future__ import annotations

import math

import torch

from clip_core import InputError

__all__ = ["check_pair", "check_positive", "check_scalar"]


def check_pair(first: object, second: object, names: tuple[str, str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Both are floating-point ``[batch, dim]`` tensors of one shape, batch ≥ 1, on one device.

    Returns them, the second cast to the first one's dtype (as ``ClipModel`` scores text against images).
    """
    a, b = _embeddings(first, names[0]), _embeddings(second, names[1])
    if a.shape[0] != b.shape[0]:
        raise InputError(
            f"{names[0]} and {names[1]} must be pairs of one batch size, got {a.shape[0]} and {b.shape[0]}"
        )
    if a.shape[1] != b.shape[1]:
        raise InputError(f"{names[0]} and {names[1]} must have one embedding width, got {a.shape[1]} and {b.shape[1]}")
    if a.device != b.device:
        raise InputError(f"{names[0]} is on {a.device} but {names[1]} is on {b.device}")
    return a, b.to(a.dtype)


def _embeddings(value: object, name: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or value.ndim != 2:
        raise InputError(f"{name} must be a tensor [batch, dim], got {_describe(value)}")
    if not value.is_floating_point():
        raise InputError(f"{name} must be floating point, got {value.dtype}")
    if value.shape[0] == 0 or value.shape[1] == 0:
        raise InputError(f"{name} must hold at least one embedding of at least one value, got shape {_shape(value)}")
    return value


def check_scalar(value: object, name: str, like: torch.Tensor, hint: str = "") -> torch.Tensor:
    """A Python number or a one-element floating-point tensor, as a 0-dim tensor (numbers: ``like``'s dtype).

    ``hint`` ends the error message.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return torch.tensor(float(value), dtype=like.dtype, device=like.device)
    if not isinstance(value, torch.Tensor) or value.numel() != 1 or not value.is_floating_point():
        raise InputError(
            f"{name} must be a number or a one-element floating-point tensor, got {_describe(value)}{hint}"
        )
    return value.reshape(())


def check_positive(value: object, name: str) -> float:
    """A finite number greater than zero (a temperature), as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise InputError(f"{name} must be a finite number greater than 0, got {value!r}")
    return float(value)


def _shape(tensor: torch.Tensor) -> tuple[int, ...]:
    return tuple(tensor.shape)


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {_shape(value)}"
    return "None" if value is None else f"a {type(value).__name__}"
