"""``TrainConfig``: everything a contrastive training run is told, validated (pydantic), as ``clip train`` reads it."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["TrainConfig"]

PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]


class TrainConfig(BaseModel):
    """A training run: what to train, on what data, how, and where to write it.

    ``batch_size`` is the **global** batch of one update: over every process and every accumulation micro-batch.
    Each process holds ``batch_size / world_size`` pairs per update, in ``accum_steps`` micro-batches of
    ``batch_size / (world_size * accum_steps)``; changing the process count or the accumulation leaves the data of
    each update, and (up to float rounding) the update itself, unchanged.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    card: str | None = Field(
        default=None, description="Card to train: a registered name or alias, or a card file (unused given a model)."
    )
    pretrained: str | None = Field(
        default=None, description="Weights to start from (a checkpoint path or a pretrained tag); None: from scratch."
    )
    data: Path | None = Field(
        default=None,
        description="Image-caption pairs: a .csv or .jsonl file, a folder of images with .txt captions, or "
        "webdataset shards (a .tar path, a brace pattern such as shards/{00000..00099}.tar, or a .txt list of shards)",
    )
    train_num_samples: PositiveInt | None = Field(
        default=None,
        description="Samples per epoch of shard data (default: counted from the shards' headers).",
    )
    image_column: str = Field(default="image", description="CSV column / JSON key of the image paths.")
    caption_column: str = Field(default="caption", description="CSV column / JSON key of the captions.")
    out: Path = Field(default=Path("clip-train"), description="Output folder: checkpoints/ and the final model/.")

    steps: PositiveInt | None = Field(default=None, description="Number of updates; or give `epochs`.")
    epochs: Annotated[float, Field(gt=0)] | None = Field(
        default=None, description="Passes over the data (rounded up to whole updates); used when `steps` is not given."
    )
    batch_size: PositiveInt = Field(
        default=64, description="Global batch of one update (all processes, all micro-batches)."
    )
    accum_steps: PositiveInt = Field(
        default=1,
        description="Micro-batches per update, by feature caching: the same gradient as the whole batch at once.",
    )

    lr: Annotated[float, Field(gt=0)] = Field(default=5e-4, description="Peak learning rate (AdamW).")
    min_lr: NonNegativeFloat = Field(default=0.0, description="Learning rate the cosine decays to.")
    warmup_steps: Annotated[int, Field(ge=0)] = Field(default=100, description="Updates of linear warm-up.")
    weight_decay: NonNegativeFloat = Field(
        default=0.2, description="AdamW weight decay, on weights only (not biases, norms, embeddings, logit scale)."
    )
    betas: tuple[Annotated[float, Field(ge=0, lt=1)], Annotated[float, Field(ge=0, lt=1)]] = Field(
        default=(0.9, 0.98), description="AdamW betas."
    )
    eps: Annotated[float, Field(gt=0)] = Field(default=1e-6, description="AdamW epsilon.")
    grad_clip_norm: Annotated[float, Field(gt=0)] | None = Field(
        default=None, description="Clip the gradient's global norm to this value; None: no clipping."
    )
    max_logit_scale: float = Field(
        default=math.log(100), description="The learnable log logit scale is clamped to [0, this] after each update."
    )

    loss: str = Field(default="clip", description="Registered loss name ('clip', 'siglip', 'ntxent' with clip-losses).")
    loss_options: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments for the loss.")
    precision: Literal["fp32", "bf16"] = Field(
        default="fp32", description="'bf16': bfloat16 autocast for the towers (weights and optimizer stay fp32)."
    )
    grad_checkpointing: bool = Field(
        default=False, description="Recompute each tower's blocks in the backward pass instead of storing them."
    )
    freeze: Literal["image", "text"] | None = Field(
        default=None, description="Freeze one tower (LiT-style): eval mode, no gradients, not in the optimizer."
    )

    save_every: PositiveInt | None = Field(
        default=None, description="Write a checkpoint every this many updates (and always after the last one)."
    )
    checkpoints: bool = Field(
        default=True, description="Write checkpoints (every `save_every` updates and after the last); False: none."
    )
    keep_checkpoints: PositiveInt = Field(default=2, description="Checkpoints kept in out/checkpoints (the newest).")
    resume: Path | Literal["latest"] | None = Field(
        default=None,
        description="Continue a run: a checkpoint folder, or 'latest' (the newest in out/checkpoints, if any).",
    )
    seed: int = Field(default=0, description="Seed of the initialisation, the data order and every random draw.")
    workers: Annotated[int, Field(ge=0)] = Field(default=0, description="Data-loading worker processes per process.")
    device: str | None = Field(
        default=None, description="'cpu', 'cuda', 'cuda:1'...; None: the local GPU if any, else the CPU."
    )
    progress: bool = Field(default=True, description="Show a progress bar (on the first process).")
    log_every: PositiveInt = Field(
        default=10, description="Updates between lines of out/log.jsonl (and progress-bar refreshes of the loss)."
    )
    tensorboard: bool = Field(
        default=False, description="Also log to TensorBoard in out/tensorboard (needs clip-core[tensorboard])."
    )
    eval_data: Path | None = Field(
        default=None,
        description="Evaluate the model during training on this data set (anything `clip eval --data` reads: "
        "CLIP_benchmark's wds folder, an image folder per class, a retrieval .csv or .jsonl); None: no evaluation.",
    )
    eval_every: PositiveInt | None = Field(
        default=None,
        description="Updates between evaluations (and after the last update); None: at each epoch's end and after "
        "the last update.",
    )
    eval_task: Literal["zeroshot_classification", "zeroshot_retrieval", "linear_probe"] | None = Field(
        default=None, description="What to evaluate; None: zero-shot classification or retrieval, as the data holds."
    )

    @model_validator(mode="after")
    def _sizes_fit(self) -> TrainConfig:
        if self.steps is not None and self.epochs is not None:
            raise ValueError("give `steps` or `epochs`, not both")
        if self.batch_size % self.accum_steps:
            raise ValueError(f"batch_size ({self.batch_size}) must be a multiple of accum_steps ({self.accum_steps})")
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr ({self.min_lr}) exceeds lr ({self.lr})")
        if self.eval_data is None and (self.eval_every is not None or self.eval_task is not None):
            raise ValueError("eval_every and eval_task need eval_data (the data set to evaluate on)")
        return self

    def total_steps(self, data_size: int) -> int:
        """Updates in this run: ``steps``, or ``ceil(epochs * data_size / batch_size)`` (one epoch by default)."""
        if self.steps is not None:
            return self.steps
        return max(math.ceil((self.epochs or 1.0) * data_size / self.batch_size), 1)
