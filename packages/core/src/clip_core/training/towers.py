"""The model's forward pass as a training step runs it (the module ``DistributedDataParallel`` wraps): both towers
under the run's autocast, a frozen tower without gradients, normalised float32 embeddings, the temperature."""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from clip_core.model import ClipModel

__all__ = ["StepTowers"]


class StepTowers(nn.Module):
    """The model's forward pass as a training step needs it (the module that DDP wraps)."""

    def __init__(self, model: ClipModel, freeze: str | None, bf16: bool, device_type: str) -> None:
        super().__init__()
        self.model = model
        self.freeze = freeze
        self.bf16 = bf16
        self.device_type = device_type

    def forward(
        self, pixels: torch.Tensor | None, ids: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor, torch.Tensor | None]:
        with torch.autocast(self.device_type, dtype=torch.bfloat16, enabled=self.bf16):
            images = None if pixels is None else self._embed("image", pixels)
            texts = None if ids is None else self._embed("text", ids)
        return images, texts, self.model.logit_scale.exp(), self.model.logit_bias

    def _embed(self, tower: str, inputs: torch.Tensor) -> torch.Tensor:
        encode = self.model.encode_image if tower == "image" else self.model.encode_text
        with torch.no_grad() if self.freeze == tower else contextlib.nullcontext():
            return encode(inputs, normalize=True).float()
