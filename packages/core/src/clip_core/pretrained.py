"""Pretrained weight entries: where the weights for a card's tag live, and what they are."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["PretrainedWeights"]


class PretrainedWeights(BaseModel):
    """One set of published weights, keyed by ``card`` and ``tag`` (``ViT-B-32`` / ``openai``).

    Exactly one of ``url`` (verified against ``sha256`` after download) or ``hf_hub_id`` (a Hugging Face hub
    repository, with ``filename`` inside it) says where the weights come from.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    card: str = Field(description="Name of the card these weights fit.")
    tag: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")] = Field(description="Pretrained tag.")
    url: str | None = Field(default=None, description="Direct download URL.")
    hf_hub_id: str | None = Field(default=None, description="Hugging Face hub repository, e.g. 'laion/CLIP-ViT-B-32'.")
    filename: str | None = Field(default=None, description="File inside the hub repository.")
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = Field(
        default=None, description="SHA-256 of the file, checked after download."
    )
    format: str | None = Field(
        default=None, description="Checkpoint layout, e.g. 'openai-torchscript', 'open_clip', 'hf'."
    )
    license: str | None = Field(default=None, description="License of the weights.")
    dataset: str | None = Field(default=None, description="Data set the weights were trained on.")

    @model_validator(mode="after")
    def _one_source(self) -> PretrainedWeights:
        if (self.url is None) == (self.hf_hub_id is None):
            raise ValueError("give exactly one of `url` or `hf_hub_id`")
        return self
