"""Contrastive training of any card on image-caption pairs (``clip train``).

``train(TrainConfig(card=..., data=..., steps=...))`` runs a whole training; :class:`Trainer` gives control over
it (a model or data set of your own, stopping early, writing checkpoints). See :mod:`clip_core.training.trainer`
for what an update does: accumulation by feature caching, distributed training under ``torchrun``, frozen towers,
gradient checkpointing, exact resume; and :mod:`clip_core.training.evaluation` for evaluating during training
(``eval_data``), which changes no update.
"""

from __future__ import annotations

from clip_core.training.checkpoint import latest_checkpoint, read_training_state
from clip_core.training.config import TrainConfig
from clip_core.training.data import ImageCaptionDataset, Pair, PairCollator, StepBatches, TensorPairs, read_pairs
from clip_core.training.log import read_log
from clip_core.training.optimizer import parameter_groups, split_weight_decay
from clip_core.training.schedule import CosineWithWarmup, cosine_with_warmup
from clip_core.training.shards import ShardPairs
from clip_core.training.trainer import StepRecord, Trainer, TrainResult, train

__all__ = [
    "CosineWithWarmup",
    "ImageCaptionDataset",
    "Pair",
    "PairCollator",
    "ShardPairs",
    "StepBatches",
    "StepRecord",
    "TensorPairs",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "cosine_with_warmup",
    "latest_checkpoint",
    "parameter_groups",
    "read_log",
    "read_pairs",
    "read_training_state",
    "split_weight_decay",
    "train",
]
