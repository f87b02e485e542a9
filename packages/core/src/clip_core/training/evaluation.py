"""Evaluation during training (``eval_data``): when it is due, and running it without touching the training.

An evaluation is due after every ``eval_every`` updates, or (without ``eval_every``) after the last update of each
epoch, and always after the run's last update: it depends only on the update count, so a resumed run evaluates
after the same updates as the uninterrupted one. It runs :func:`~clip_core.eval.evaluate` (the numbers of
``clip eval`` on the same weights) on the first process while the others wait for it (and stop too if it fails:
``Trainer._evaluate``), so the metrics do not depend on the number of processes; in eval mode, without gradients,
on the weights in their own dtype (fp32: the ``bf16`` autocast is the training step's alone). Afterwards every
module's training flag and the random number generators are put back as they were, so the training is bit for bit
the same with and without evaluation.

The data set is read, and checked against the task, once when the trainer is set up (by every process, so that a
bad path stops them all before training starts).
"""

from __future__ import annotations

from pathlib import Path

import torch

from clip_core.errors import InputError
from clip_core.eval.data import EvalData, load_data
from clip_core.eval.evaluate import Task, evaluate, resolve_task
from clip_core.model import ClipModel
from clip_core.training.state import restore_rng, rng_state

__all__ = ["TrainingEvaluation"]


class TrainingEvaluation:
    """The evaluation data set and task of a run, and its schedule (see this module's documentation)."""

    def __init__(self, path: Path, task: Task | None = None, every: int | None = None) -> None:
        try:
            self.data: EvalData = load_data(path)
            self.task: Task = resolve_task(self.data, task)
            self.train = load_data(path, "train") if self.task == "linear_probe" else None
        except InputError as exc:
            raise InputError(f"eval_data: {exc}") from None
        self.every = every

    def due(self, step: int, total_steps: int, steps_per_epoch: int) -> bool:
        """Whether to evaluate after update ``step`` (1-based)."""
        return step == total_steps or step % (self.every or steps_per_epoch) == 0

    def run(self, model: ClipModel, device: torch.device, *, step: int, workers: int = 0) -> dict[str, float]:
        """The metrics of ``model`` now (CLIP_benchmark's names; NaN where undefined), leaving it as it was."""
        modes = [(module, module.training) for module in model.modules()]
        generators = rng_state(device)  # the data loaders and the linear probe draw from (or seed) them
        try:
            # evaluate() runs the model without gradients (and the linear probe, not the model, with them)
            result = evaluate(
                model,
                self.data,
                self.task,
                train=self.train,
                workers=workers,
                fingerprint=f"training update {step}",  # not hashing the weights at every evaluation
            )
        finally:
            restore_rng(generators, device)
            for module, training in modes:
                module.training = training
        return dict(result.metrics)
