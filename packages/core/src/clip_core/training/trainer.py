"""Contrastive training of any card on image-caption pairs.

What one update does, in order:

1. Each process takes its slice of the update's global batch (:class:`~clip_core.training.data.StepBatches`).
2. **Accumulation by feature caching** (open_clip's ``accum_freq``, made exact). With ``accum_steps = A > 1`` the
   process's pairs are split into ``A`` micro-batches. First every micro-batch is embedded without gradients and
   the embeddings are kept. Then, for each micro-batch ``j`` in turn, it is embedded again with gradients, its
   rows replace the cached ones, the loss of the **whole** batch is computed and back-propagated: the gradient
   reaching the towers through micro-batch ``j``'s embeddings is exactly its share of the whole-batch gradient,
   and the sum over ``j`` is the whole-batch gradient (the logit scale and bias take part, with gradients, only
   in the last micro-batch's loss, so they too get their gradient once). So an update with accumulation equals,
   up to float rounding, the update on the whole batch at once, for any loss (but see BatchNorm below), at the
   cost of one extra forward pass per micro-batch; the memory held is one micro-batch's activations plus the
   whole batch's embeddings.
   The two passes over a micro-batch see the same network: the cache pass leaves BatchNorm running statistics
   untouched (the gradient pass updates them once per micro-batch, as ``A`` steps without caching would), and the
   gradient pass replays the random state of the cache pass, so dropout and drop-path draw the same masks. What
   stays inexact: a BatchNorm layer in training normalises with the statistics of its micro-batch, not of the
   whole batch, and its running statistics are updated ``A`` times with them, so towers with BatchNorm (the
   modified-resnet ones) get the gradient of ``A`` micro-batch normalisations, not of one whole-batch one.
3. Under ``torchrun`` (``WORLD_SIZE > 1``) the step runs in ``DistributedDataParallel`` (gloo on CPU, NCCL on
   GPUs). The losses gather embeddings across processes themselves (they are built with ``local_loss=True`` when
   they accept it), so every process computes the loss of the global batch and DDP's gradient averaging gives
   the gradient one process would compute on the whole global batch (:mod:`clip_core.processes`).
4. AdamW (weight decay only on weights: not on biases, norms, token or position embeddings or the logit scale and
   bias; timm's rule, which spares the embeddings open_clip decays: see
   :func:`~clip_core.training.optimizer.split_weight_decay` for why) with a cosine schedule after a linear
   warm-up; the log logit scale is then clamped to ``[0, max_logit_scale]`` (ln 100 by default). See
   :mod:`clip_core.training.optimizer`.

A frozen tower (``freeze``, LiT-style) stays in eval mode, runs without gradients and is not in the optimizer.
With ``grad_checkpointing`` each trainable tower's ``set_grad_checkpointing(True)`` is called; a tower without
that method is trained without it, with a one-line warning.

With ``eval_data`` the model is evaluated during training (after every ``eval_every`` updates, or at each epoch's
end, and after the last update) without changing the training: see :mod:`clip_core.training.evaluation`.

Checkpoints (:mod:`clip_core.training.checkpoint`; what they hold and resuming: :mod:`clip_core.training.state`)
hold the model, the optimizer and scheduler state, the update count and every process's random number generator
states, and resuming from one is exact: on CPU a run stopped after update ``k`` and resumed continues bit for bit
as the uninterrupted run (the data order depends only on the seed and the update).
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from clip_core.catalog import get_card
from clip_core.create import create_model
from clip_core.errors import ClipError, InputError
from clip_core.model import ClipModel
from clip_core.preprocess import get_preprocess
from clip_core.processes import barrier, end_processes, gather_objects, process_device, start_processes
from clip_core.protocols import Tokenizer
from clip_core.shardfiles import expand_shards, is_shard_spec
from clip_core.tokenizer import get_tokenizer
from clip_core.training.caching import rng_state_of, running_stats_kept, set_rng_state_of
from clip_core.training.checkpoint import save_training_checkpoint
from clip_core.training.config import TrainConfig
from clip_core.training.data import ImageCaptionDataset, PairCollator, StepBatches, read_pairs
from clip_core.training.evaluation import TrainingEvaluation
from clip_core.training.log import TrainingLog, progress_bar
from clip_core.training.loss import build_loss
from clip_core.training.optimizer import adamw, freeze_untrained
from clip_core.training.processes import check_replicas_agree
from clip_core.training.schedule import CosineWithWarmup
from clip_core.training.shards import ShardBatch, ShardPairs
from clip_core.training.state import resume_from, resume_point, rng_states, training_state
from clip_core.training.towers import StepTowers

__all__ = ["StepRecord", "TrainResult", "Trainer", "train"]

logger = logging.getLogger("clip_core.training")

Pairs = Dataset[tuple[torch.Tensor, str]] | ShardPairs


@dataclass(frozen=True)
class StepRecord:
    """One update: its number (1-based), the loss of its batch, its learning rate and the samples per second."""

    step: int
    loss: float
    lr: float
    samples_per_second: float


@dataclass
class TrainResult:
    """What a call to :meth:`Trainer.fit` did."""

    #: Updates done in total (counting those before a resume).
    steps: int
    #: The updates done by this call.
    history: list[StepRecord] = field(default_factory=list)
    #: Wall-clock seconds of this call's updates.
    seconds: float = 0.0
    #: The final model (``out/model``), if the run finished in this call.
    model_dir: Path | None = None
    #: The newest checkpoint written, if any.
    checkpoint: Path | None = None
    #: Number of training processes.
    world_size: int = 1
    #: The evaluations this call ran (``eval_data``): update to metrics, on the first process.
    evaluations: dict[int, dict[str, float]] = field(default_factory=dict)


class Trainer:
    """Trains a ``ClipModel`` contrastively as ``config`` says (see this module's documentation).

    ``model`` (default: built from ``config.card`` and ``config.pretrained``), ``dataset`` (default: read from
    ``config.data`` with the card's preprocessing) and ``tokenizer`` (default: the card's) may be given instead.
    ``dataset`` items are ``(pixels [3, H, W], caption)``, or ``dataset`` is a
    :class:`~clip_core.training.shards.ShardPairs` (what ``config.data`` naming webdataset shards gives). Under
    ``torchrun`` every process builds its own ``Trainer`` with the same arguments.
    """

    def __init__(
        self,
        config: TrainConfig,
        model: ClipModel | None = None,
        dataset: Pairs | None = None,
        tokenizer: Tokenizer | None = None,
    ) -> None:
        self.config = config
        self.processes = start_processes()
        try:
            self._set_up(model, dataset, tokenizer)
        except BaseException:
            self.close()
            raise

    # -- set-up ----------------------------------------------------------------------------------------------
    def _set_up(self, model: ClipModel | None, dataset: Pairs | None, tokenizer: Tokenizer | None) -> None:
        config = self.config
        self.device = process_device(config.device, self.processes)
        resume = resume_point(config)
        if model is None and config.card is None:
            raise InputError("give the card to train (TrainConfig.card, or a model)")
        card = model.card if model is not None else get_card(config.card)  # type: ignore[arg-type]
        if dataset is None:  # read (and check) the data before spending time on the model
            if config.data is None:
                raise InputError("give the training data (TrainConfig.data, or a dataset)")
            if is_shard_spec(config.data):
                shards = expand_shards(config.data)
                num_samples = config.train_num_samples
                dataset = ShardPairs(shards, get_preprocess(card), num_samples=num_samples, seed=config.seed)
            else:
                pairs = read_pairs(config.data, config.image_column, config.caption_column)
                dataset = ImageCaptionDataset(pairs, get_preprocess(card))
        self.evaluation = None
        if config.eval_data is not None:  # checked before training starts too
            self.evaluation = TrainingEvaluation(config.eval_data, config.eval_task, config.eval_every)
        self.dataset = dataset
        self.tokenizer = tokenizer or get_tokenizer(card)
        self.loss_fn, self._loss_inputs = build_loss(config, self.processes.world_size)
        torch.manual_seed(config.seed)
        random.seed(config.seed)
        if model is None:
            model = create_model(card, config.pretrained)
        self.model = model.to(self.device)
        size = len(dataset)  # type: ignore[arg-type]
        if size < config.batch_size:
            raise InputError(f"the data set has {size} pairs, fewer than one batch ({config.batch_size})")
        self.total_steps = config.total_steps(size)
        self.steps_per_epoch = max(size // config.batch_size, 1)
        local = config.batch_size // self.processes.world_size
        if config.batch_size % (self.processes.world_size * config.accum_steps):
            raise InputError(
                f"batch_size ({config.batch_size}) must be a multiple of processes x accum_steps "
                f"({self.processes.world_size} x {config.accum_steps})"
            )
        self.micro_batch = local // config.accum_steps

        self._prepare_parameters()
        self.optimizer = adamw(self.model, config, self.device)
        self.scheduler = CosineWithWarmup(self.optimizer, config.warmup_steps, self.total_steps, config.min_lr)
        self.step, self.skipped = 0, 0
        self.data_cursor: tuple[int, int, int] = (0, 0, 0)
        if resume is not None:
            self.step, self.data_cursor = resume_from(
                resume, self.model, self.optimizer, self.scheduler, config, self.processes, self.device
            )
        self.towers = StepTowers(self.model, config.freeze, config.precision == "bf16", self.device.type)
        self.step_module: nn.Module = self.towers
        if self.processes.world_size > 1:
            self.step_module = nn.parallel.DistributedDataParallel(
                self.towers, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )

    def _prepare_parameters(self) -> None:
        model, config = self.model, self.config
        model.train()
        freeze_untrained(model, config.freeze, self._loss_inputs)
        if config.grad_checkpointing:
            for name, tower in (("image", model.visual), ("text", model.text)):
                if name == config.freeze:
                    continue
                enable = getattr(tower, "set_grad_checkpointing", None)
                if callable(enable):
                    enable(True)
                else:
                    logger.warning(
                        "the %s tower (%s) has no set_grad_checkpointing; training it without gradient checkpointing",
                        name,
                        type(tower).__name__,
                    )

    # -- training --------------------------------------------------------------------------------------------
    def fit(self, until: int | None = None) -> TrainResult:
        """Train up to update ``until`` (default: the last), writing checkpoints as configured.

        After the last update the model is also saved to ``out/model``. Returns what this call did.
        """
        config, processes = self.config, self.processes
        stop = self.total_steps if until is None else min(until, self.total_steps)
        result = TrainResult(steps=self.step)
        if self.step >= stop:
            return result
        loader = self._loader(stop)
        bar = progress_bar(self.total_steps, self.step, enabled=config.progress and processes.main)
        log = TrainingLog(config.out, enabled=processes.main, tensorboard=config.tensorboard)
        started = last = time.perf_counter()
        logged = 0  # updates of this call already in a log line
        try:
            for batch in loader:
                if isinstance(batch, ShardBatch):
                    pixels, ids, self.data_cursor = batch.pixels, batch.ids, batch.cursor
                    self.skipped += batch.skipped
                else:
                    pixels, ids = batch
                lr = float(self.optimizer.param_groups[0]["lr"])
                loss = self._update(pixels.to(self.device, non_blocking=True), ids.to(self.device, non_blocking=True))
                self.step += 1
                now = time.perf_counter()
                record = StepRecord(self.step, loss, lr, config.batch_size / max(now - last, 1e-9))
                last = now
                result.history.append(record)
                metrics, evaluation = None, self.evaluation
                if evaluation is not None and evaluation.due(self.step, self.total_steps, self.steps_per_epoch):
                    metrics = self._evaluate()
                    if processes.main:
                        result.evaluations[self.step] = metrics
                    last = time.perf_counter()  # the evaluation's time is not the next update's
                if self.step % config.log_every == 0 or self.step == stop or metrics is not None:
                    window = result.history[logged:]
                    speed = sum(r.samples_per_second for r in window) / len(window)
                    self._log(log, record, speed, metrics)
                    logged = len(result.history)
                    if bar is not None:
                        bar.set_postfix_str(f"loss {loss:.4f}, lr {lr:.2e}, {speed:.0f} samples/s", refresh=False)
                if bar is not None:
                    bar.update(1)
                due = (config.save_every and self.step % config.save_every == 0) or self.step == self.total_steps
                if config.checkpoints and due:
                    result.checkpoint = self.save_checkpoint()
        finally:
            log.close()
            if bar is not None:
                bar.close()
        result.steps = self.step
        result.seconds = time.perf_counter() - started
        result.world_size = processes.world_size
        check_replicas_agree(self.model, processes)
        if self.step == self.total_steps:
            if processes.main:
                result.model_dir = self.model.save_pretrained(config.out / "model")
            barrier(processes)
        return result

    def _loader(self, stop: int) -> Any:
        """This process's batches of updates ``self.step .. stop - 1``."""
        config, processes, collate = self.config, self.processes, PairCollator(self.tokenizer)
        if isinstance(self.dataset, ShardPairs):
            return self.dataset.loader(
                cursor=self.data_cursor,
                start_step=self.step,
                stop=stop,
                global_batch=config.batch_size,
                rank=processes.rank,
                world_size=processes.world_size,
                workers=config.workers,
                collate=collate,
            )
        sampler = StepBatches(
            len(self.dataset),  # type: ignore[arg-type]
            config.batch_size,
            seed=config.seed,
            start_step=self.step,
            total_steps=stop,
            rank=processes.rank,
            world_size=processes.world_size,
        )
        return DataLoader(
            self.dataset,
            batch_sampler=sampler,
            collate_fn=collate,
            num_workers=config.workers,
            pin_memory=self.device.type == "cuda",
            generator=torch.Generator().manual_seed(config.seed),
            persistent_workers=False,
        )

    def _evaluate(self) -> dict[str, float]:
        """Evaluate on ``eval_data`` (see :mod:`clip_core.training.evaluation`) on the first process while the
        others wait (every process must call this); returns the metrics there, ``{}`` elsewhere. An evaluation that
        fails stops every process, each saying why: the first with the evaluation's error, the others naming it."""
        metrics: dict[str, float] = {}
        error: BaseException | None = None
        if self.processes.main:
            assert self.evaluation is not None
            try:
                metrics = self.evaluation.run(self.model, self.device, step=self.step, workers=self.config.workers)
            except Exception as exc:  # re-raised below, once the other processes know
                error = exc
        failed = any(done["failed"] for done in gather_objects({"failed": error is not None}, self.processes))
        if error is not None:
            raise error
        if failed:
            raise ClipError(f"the evaluation after update {self.step} failed on the first process (see its output)")
        return metrics

    def _log(self, log: TrainingLog, record: StepRecord, speed: float, metrics: dict[str, float] | None) -> None:
        """One line of ``out/log.jsonl``, with ``metrics`` if an evaluation ran (every process takes part: the
        skipped samples are summed)."""
        skipped = sum(int(value["skipped"]) for value in gather_objects({"skipped": self.skipped}, self.processes))
        line: dict[str, Any] = {
            "step": record.step,
            "loss": record.loss,
            "lr": record.lr,
            "logit_scale": float(self.model.logit_scale.detach().exp()),
            "samples_per_second": speed,
            "epoch": record.step / self.steps_per_epoch,
            "skipped": skipped,
        }
        if metrics is not None:
            line["eval"] = {name: None if math.isnan(value) else value for name, value in metrics.items()}
        log.write(line)

    def _update(self, pixels: torch.Tensor, ids: torch.Tensor) -> float:
        """One optimizer update on this process's pairs; returns the loss of the global batch."""
        self.optimizer.zero_grad(set_to_none=True)
        accum = self.config.accum_steps
        if accum == 1:
            images, texts, scale, bias = self.step_module(pixels, ids)
            loss = self._loss(images, texts, scale, bias)
            torch.autograd.backward(loss)
        else:
            loss = self._accumulated(torch.split(pixels, self.micro_batch), torch.split(ids, self.micro_batch))
        if self.config.grad_clip_norm is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip_norm)
        self.optimizer.step()
        self.scheduler.step()
        with torch.no_grad():
            self.model.logit_scale.clamp_(0, self.config.max_logit_scale)
        return float(loss.detach())

    def _accumulated(self, pixels: Sequence[torch.Tensor], ids: Sequence[torch.Tensor]) -> torch.Tensor:
        """Feature-caching accumulation (see the module's documentation); returns the whole batch's loss."""
        freeze = self.config.freeze
        states = []
        with torch.no_grad(), running_stats_kept(self.model):
            cached = []
            for p, i in zip(pixels, ids, strict=True):
                states.append(rng_state_of(self.device))
                cached.append(self.step_module(p, i)[:2])
        cached_images = [images for images, _ in cached]
        cached_texts = [texts for _, texts in cached]
        last = len(pixels) - 1
        for j, (p, i) in enumerate(zip(pixels, ids, strict=True)):
            no_sync = getattr(self.step_module, "no_sync", None)
            with no_sync() if j < last and no_sync is not None else contextlib.nullcontext():
                set_rng_state_of(states[j], self.device)  # the cache pass's dropout and drop-path masks again
                images_j, texts_j, scale, bias = self.step_module(
                    None if freeze == "image" else p, None if freeze == "text" else i
                )
                if j < last:  # the temperature (and bias) take part once, in the last micro-batch's loss
                    scale, bias = scale.detach(), None if bias is None else bias.detach()
                loss = self._loss(_replace(cached_images, j, images_j), _replace(cached_texts, j, texts_j), scale, bias)
                torch.autograd.backward(loss)
        return loss

    def _loss(
        self, images: torch.Tensor, texts: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None
    ) -> torch.Tensor:
        arguments: list[Any] = [images, texts]
        if "scale" in self._loss_inputs:
            arguments.append(scale.float())
        if "bias" in self._loss_inputs:
            arguments.append(None if bias is None else bias.float())
        loss: torch.Tensor = self.loss_fn(*arguments)
        return loss

    # -- checkpoints -----------------------------------------------------------------------------------------
    def save_checkpoint(self) -> Path | None:
        """Write the checkpoint of the current update (on the first process; every process must call this)."""
        generators = rng_states(self.processes, self.device)
        path = None
        if self.processes.main:
            state = training_state(
                self.step, self.total_steps, self.model, self.optimizer, self.scheduler, self.config, generators
            )
            state["data_cursor"] = list(self.data_cursor)
            path = save_training_checkpoint(
                self.config.out / "checkpoints", self.step, self.model, state, self.config.keep_checkpoints
            )
        barrier(self.processes)
        return path

    def close(self) -> None:
        """End the process group if this trainer started it."""
        end_processes(self.processes)


def train(
    config: TrainConfig,
    model: ClipModel | None = None,
    dataset: Pairs | None = None,
    tokenizer: Tokenizer | None = None,
) -> TrainResult:
    """Run a whole training (see :class:`Trainer`) and return what it did."""
    trainer = Trainer(config, model, dataset, tokenizer)
    try:
        return trainer.fit()
    finally:
        trainer.close()


# -- helpers ---------------------------------------------------------------------------------------------------
def _replace(rows: list[torch.Tensor], j: int, new: torch.Tensor | None) -> torch.Tensor:
    """The cached micro-batches ``rows`` concatenated, micro-batch ``j`` replaced by ``new`` (if given)."""
    return torch.cat([*rows[:j], rows[j] if new is None else new, *rows[j + 1 :]])
