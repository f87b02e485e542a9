"""A model's fingerprint: a hash of its weights, to tell whether two files were made by the same model."""

from __future__ import annotations

import hashlib

import torch
from torch import nn

__all__ = ["model_fingerprint"]


def model_fingerprint(model: nn.Module) -> str:
    """``"sha256:<hex>"`` of the state dict: every key, dtype, shape and value, in key order.

    The same weights give the same fingerprint however they were loaded (this SDK's directory, an OpenAI or
    open_clip file), since they are hashed in this SDK's layout; converting the model to another dtype changes it,
    so take the fingerprint before converting.
    """
    digest = hashlib.sha256()
    state = model.state_dict()
    for key in sorted(state):
        tensor = state[key].detach()
        digest.update(f"{key}|{str(tensor.dtype).removeprefix('torch.')}|{tuple(tensor.shape)}\n".encode())
        data = tensor.to("cpu").contiguous().reshape(-1).view(torch.uint8)
        digest.update(memoryview(data.numpy()))
    return f"sha256:{digest.hexdigest()}"
