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
   up to float rounding, the update on the whole batch at once, for any loss, at the cost of one extra forward
   pass per micro-batch; the memory held is one micro-batch's activations plus the whole batch's embeddings.
3. Under ``torchrun`` (``WORLD_SIZE > 1``) the step runs in ``DistributedDataParallel`` (gloo on CPU, NCCL on
   GPUs). The losses gather embeddings across processes themselves (they are built with ``local_loss=True`` when
   they accept it), so every process computes the loss of the global batch and DDP's gradient averaging gives
   the gradient one process would compute on the whole global batch.
4. AdamW (weight decay only on weights: not on biases, norms, embeddings or the logit scale and bias, as
   open_clip) with a cosine schedule after a linear warm-up; the log logit scale is then clamped to
   ``[0, max_logit_scale]`` (ln 100 by default).

A frozen tower (``freeze``, LiT-style) stays in eval mode, runs without gradients and is not in the optimizer.
With ``grad_checkpointing`` each trainable tower's ``set_grad_checkpointing(True)`` is called; a tower without
that method is trained without it, with a one-line warning.

Checkpoints (:mod:`clip_core.training.checkpoint`) hold the model, the optimizer and scheduler state, the update
count and every process's random number generator states, and resuming from one is exact: on CPU a run stopped
after update ``k`` and resumed continues bit for bit as the uninterrupted run (the data order depends only on
the seed and the update).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset

from clip_core import registry
from clip_core.catalog import get_card
from clip_core.checkpoints.native import read_safetensors
from clip_core.checkpoints.strict import load_state_dict_strict
from clip_core.create import create_model
from clip_core.errors import CheckpointError, InputError, PluginError
from clip_core.model import ClipModel
from clip_core.preprocess import get_preprocess
from clip_core.protocols import Tokenizer
from clip_core.tokenizer import get_tokenizer
from clip_core.training.checkpoint import (
    STATE_FORMAT,
    checkpoints,
    latest_checkpoint,
    read_training_state,
    save_training_checkpoint,
)
from clip_core.training.config import TrainConfig
from clip_core.training.data import ImageCaptionDataset, PairCollator, StepBatches, read_pairs
from clip_core.training.schedule import CosineWithWarmup

__all__ = ["StepRecord", "TrainResult", "Trainer", "parameter_groups", "split_weight_decay", "train"]

logger = logging.getLogger("clip_core.training")

Pairs = Dataset[tuple[torch.Tensor, str]]
_NORMS: tuple[type[nn.Module], ...] = (
    nn.LayerNorm,
    nn.GroupNorm,
    nn.LocalResponseNorm,
    nn.modules.batchnorm._NormBase,
    *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()),
)
_EMBEDDINGS: tuple[type[nn.Module], ...] = (nn.Embedding, nn.EmbeddingBag)
#: Options that shape the optimizer's state: a resumed run must keep them.
_MUST_MATCH = frozenset({"freeze", "loss"})
#: Options that change nothing a resumed run computes (where files go, how progress shows, when to save).
_FREE_TO_CHANGE = frozenset(
    {"resume", "out", "progress", "log_every", "workers", "device", "save_every", "keep_checkpoints", "checkpoints"}
)


def split_weight_decay(model: nn.Module) -> tuple[list[str], list[str]]:
    """Names of the trainable parameters that get weight decay, and of those that do not.

    No decay (as open_clip): biases and any parameter with fewer than two dimensions; every parameter of a
    normalisation layer (LayerNorm, GroupNorm, BatchNorm, RMSNorm...) or an embedding table; learned embeddings
    and tokens held as parameters (a last name part containing ``embed`` or ``token``: ``pos_embed``,
    ``positional_embedding``, ``cls_token``...); the logit scale and bias. Frozen parameters are in neither list.
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


@dataclass(frozen=True)
class _Processes:
    rank: int
    world_size: int
    local_rank: int
    started_here: bool

    @property
    def main(self) -> bool:
        return self.rank == 0


class _Towers(nn.Module):
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


class Trainer:
    """Trains a ``ClipModel`` contrastively as ``config`` says (see this module's documentation).

    ``model`` (default: built from ``config.card`` and ``config.pretrained``), ``dataset`` (default: read from
    ``config.data`` with the card's preprocessing) and ``tokenizer`` (default: the card's) may be given instead.
    ``dataset`` items are ``(pixels [3, H, W], caption)``. Under ``torchrun`` every process builds its own
    ``Trainer`` with the same arguments.
    """

    def __init__(
        self,
        config: TrainConfig,
        model: ClipModel | None = None,
        dataset: Pairs | None = None,
        tokenizer: Tokenizer | None = None,
    ) -> None:
        self.config = config
        self.processes = _start_processes()
        try:
            self._set_up(model, dataset, tokenizer)
        except BaseException:
            self.close()
            raise

    # -- set-up ----------------------------------------------------------------------------------------------
    def _set_up(self, model: ClipModel | None, dataset: Pairs | None, tokenizer: Tokenizer | None) -> None:
        config = self.config
        self.device = _device(config.device, self.processes)
        resume = self._resume_point()
        if model is None and config.card is None:
            raise InputError("give the card to train (TrainConfig.card, or a model)")
        card = model.card if model is not None else get_card(config.card)  # type: ignore[arg-type]
        if dataset is None:  # read (and check) the data before spending time on the model
            if config.data is None:
                raise InputError("give the training data (TrainConfig.data, or a dataset)")
            pairs = read_pairs(config.data, config.image_column, config.caption_column)
            dataset = ImageCaptionDataset(pairs, get_preprocess(card))
        self.dataset = dataset
        self.tokenizer = tokenizer or get_tokenizer(card)
        self.loss_fn, self._loss_inputs = _build_loss(config, self.processes.world_size)
        torch.manual_seed(config.seed)
        random.seed(config.seed)
        if model is None:
            model = create_model(card, config.pretrained)
        self.model = model.to(self.device)
        size = len(dataset)  # type: ignore[arg-type]
        if size < config.batch_size:
            raise InputError(f"the data set has {size} pairs, fewer than one batch ({config.batch_size})")
        self.total_steps = config.total_steps(size)
        local = config.batch_size // self.processes.world_size
        if config.batch_size % (self.processes.world_size * config.accum_steps):
            raise InputError(
                f"batch_size ({config.batch_size}) must be a multiple of processes x accum_steps "
                f"({self.processes.world_size} x {config.accum_steps})"
            )
        self.micro_batch = local // config.accum_steps

        self._prepare_parameters()
        self.optimizer = _adamw(self.model, config, self.device)
        self.scheduler = CosineWithWarmup(self.optimizer, config.warmup_steps, self.total_steps, config.min_lr)
        self.step = 0
        if resume is not None:
            self._load_checkpoint(resume)
        self.towers = _Towers(self.model, config.freeze, config.precision == "bf16", self.device.type)
        self.step_module: nn.Module = self.towers
        if self.processes.world_size > 1:
            self.step_module = nn.parallel.DistributedDataParallel(
                self.towers, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )

    def _resume_point(self) -> Path | None:
        resume, folder = self.config.resume, self.config.out / "checkpoints"
        if resume is None:
            if checkpoints(folder):
                raise InputError(f"{folder} already holds checkpoints; resume with --resume latest, or use a new --out")
            return None
        if resume == "latest":
            return latest_checkpoint(folder)
        if not Path(resume).is_dir():
            raise InputError(f"{resume}: no such checkpoint folder")
        return Path(resume)

    def _prepare_parameters(self) -> None:
        model, config = self.model, self.config
        model.train()
        if config.freeze is not None:
            frozen = model.visual if config.freeze == "image" else model.text
            frozen.requires_grad_(False)
            frozen.eval()
        if "scale" not in self._loss_inputs:
            model.logit_scale.requires_grad_(False)
        if model.logit_bias is not None and "bias" not in self._loss_inputs:
            model.logit_bias.requires_grad_(False)
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

    def _load_checkpoint(self, checkpoint: Path) -> None:
        state = read_training_state(checkpoint)
        saved_card = state.get("card")
        if saved_card is not None and saved_card != self.model.card.model_dump(mode="json"):
            raise CheckpointError(f"{checkpoint} was written for another card than {self.model.card.name!r}")
        saved, current = state.get("config", {}), self.config.model_dump(mode="json")
        changed = sorted(k for k in current if k not in _FREE_TO_CHANGE and saved.get(k, current[k]) != current[k])
        clashes = [f"{k}={saved[k]!r} (now {current[k]!r})" for k in changed if k in _MUST_MATCH]
        if clashes:
            raise CheckpointError(
                f"{checkpoint} was written by a run with {', '.join(clashes)}; resume with the same options"
            )
        if changed:
            logger.warning("resuming from %s with changed options: %s", checkpoint, ", ".join(changed))
        weights = read_safetensors(checkpoint / "model.safetensors")
        load_state_dict_strict(self.model, weights, str(checkpoint / "model.safetensors"))
        try:
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
        except (ValueError, KeyError) as exc:
            raise CheckpointError(f"{checkpoint}: the optimizer state does not fit this run ({exc})") from None
        self.step = int(state["step"])
        generators = state["rng"]
        if len(generators) == self.processes.world_size:
            _restore_rng(generators[self.processes.rank], self.device)
        else:
            logger.warning(
                "the checkpoint holds random states of %d processes, this run has %d: random states are reseeded",
                len(generators),
                self.processes.world_size,
            )
            torch.manual_seed(self.config.seed + self.step)
        if self.processes.main:
            logger.info("resumed from %s at update %d", checkpoint, self.step)

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
        sampler = StepBatches(
            len(self.dataset),  # type: ignore[arg-type]
            config.batch_size,
            seed=config.seed,
            start_step=self.step,
            total_steps=stop,
            rank=processes.rank,
            world_size=processes.world_size,
        )
        loader = DataLoader(
            self.dataset,
            batch_sampler=sampler,
            collate_fn=PairCollator(self.tokenizer),
            num_workers=config.workers,
            pin_memory=self.device.type == "cuda",
            generator=torch.Generator().manual_seed(config.seed),
            persistent_workers=False,
        )
        bar = _progress_bar(self.total_steps, self.step, enabled=config.progress and processes.main)
        started = last = time.perf_counter()
        try:
            for pixels, ids in loader:
                lr = float(self.optimizer.param_groups[0]["lr"])
                loss = self._update(pixels.to(self.device, non_blocking=True), ids.to(self.device, non_blocking=True))
                self.step += 1
                now = time.perf_counter()
                record = StepRecord(self.step, loss, lr, config.batch_size / max(now - last, 1e-9))
                last = now
                result.history.append(record)
                if bar is not None:
                    bar.update(1)
                    if self.step % config.log_every == 0 or self.step == stop:
                        window = result.history[-config.log_every :]
                        speed = sum(r.samples_per_second for r in window) / len(window)
                        bar.set_postfix_str(f"loss {loss:.4f}, lr {lr:.2e}, {speed:.0f} samples/s", refresh=False)
                due = (config.save_every and self.step % config.save_every == 0) or self.step == self.total_steps
                if config.checkpoints and due:
                    result.checkpoint = self.save_checkpoint()
        finally:
            if bar is not None:
                bar.close()
        result.steps = self.step
        result.seconds = time.perf_counter() - started
        result.world_size = processes.world_size
        self._check_replicas_agree()
        if self.step == self.total_steps:
            if processes.main:
                result.model_dir = self.model.save_pretrained(config.out / "model")
            _barrier(processes)
        return result

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
        with torch.no_grad():
            cached = [self.step_module(p, i)[:2] for p, i in zip(pixels, ids, strict=True)]
        cached_images = [images for images, _ in cached]
        cached_texts = [texts for _, texts in cached]
        last = len(pixels) - 1
        for j, (p, i) in enumerate(zip(pixels, ids, strict=True)):
            no_sync = getattr(self.step_module, "no_sync", None)
            with no_sync() if j < last and no_sync is not None else contextlib.nullcontext():
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

    def _check_replicas_agree(self) -> None:
        """Every process must hold the same weights after an update; compare checksums, fail loudly if not."""
        if self.processes.world_size == 1:
            return
        with torch.no_grad():
            flat = torch.cat([p.detach().double().flatten() for p in self.model.parameters()])
            positions = torch.arange(1, flat.numel() + 1, dtype=torch.float64, device=flat.device)
            checksum = torch.stack([flat.sum(), (flat * positions).sum(), flat.square().sum()])
        gathered = [torch.empty_like(checksum) for _ in range(self.processes.world_size)]
        dist.all_gather(gathered, checksum)
        if any(not torch.equal(gathered[0], other) for other in gathered[1:]):
            raise RuntimeError("the training processes ended with different weights (a bug: please report it)")

    # -- checkpoints -----------------------------------------------------------------------------------------
    def save_checkpoint(self) -> Path | None:
        """Write the checkpoint of the current update (on the first process; every process must call this)."""
        generators = _gather_objects(_rng_state(self.device), self.processes)
        path = None
        if self.processes.main:
            state = {
                "format": STATE_FORMAT,
                "step": self.step,
                "total_steps": self.total_steps,
                "world_size": self.processes.world_size,
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "rng": generators,
                "card": self.model.card.model_dump(mode="json"),
                "config": self.config.model_dump(mode="json"),
            }
            path = save_training_checkpoint(
                self.config.out / "checkpoints", self.step, self.model, state, self.config.keep_checkpoints
            )
        _barrier(self.processes)
        return path

    def close(self) -> None:
        """End the process group if this trainer started it."""
        if self.processes.started_here and dist.is_initialized():
            dist.destroy_process_group()


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
def _start_processes() -> _Processes:
    """This process's place among the training processes; starts the process group under torchrun."""
    started = False
    if not (dist.is_available() and dist.is_initialized()):
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return _Processes(0, 1, 0, False)
        if not dist.is_available():
            raise InputError("WORLD_SIZE > 1 but this torch has no torch.distributed")
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank)
            dist.init_process_group("nccl")
        else:
            dist.init_process_group("gloo")
        started = True
    return _Processes(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), started)


def _device(requested: str | None, processes: _Processes) -> torch.device:
    if requested is not None:
        return torch.device("cuda", processes.local_rank) if requested == "cuda" else torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda", processes.local_rank)
    return torch.device("cpu")


def _build_loss(config: TrainConfig, world_size: int) -> tuple[nn.Module, frozenset[str]]:
    """The registered loss, and which of (scale, bias) its ``forward`` takes after the two embedding batches."""
    entry = registry.loss(config.loss)
    options = dict(config.loss_options)
    accepts = inspect.signature(entry.loss).parameters
    if world_size > 1 and "local_loss" in accepts and "local_loss" not in options:
        options["local_loss"] = True
    try:
        loss_fn = entry.loss(**options)
    except TypeError as exc:
        raise InputError(f"loss {config.loss!r} does not take these options {sorted(options)}: {exc}") from None
    positional = [
        parameter
        for parameter in inspect.signature(loss_fn.forward).parameters.values()
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD)
    ]
    if not 2 <= len(positional) <= 4:
        raise PluginError(
            f"loss {config.loss!r} (plugin {entry.plugin!r}) takes {len(positional)} inputs; a training loss takes "
            "(image_embeds, text_embeds[, logit_scale[, logit_bias]])"
        )
    return loss_fn, frozenset(("scale", "bias")[: len(positional) - 2])


def _adamw(model: nn.Module, config: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    groups = parameter_groups(model, config.weight_decay)
    if not groups:
        raise InputError("nothing to train: every parameter is frozen")
    options: dict[str, Any] = {"lr": config.lr, "betas": config.betas, "eps": config.eps}
    cpu_fused = tuple(int(part) for part in torch.__version__.split("+")[0].split(".")[:2]) >= (2, 4)
    try:  # the fused kernel, where this torch has one for the device (CPU since torch 2.4)
        return torch.optim.AdamW(groups, fused=device.type == "cuda" or (device.type == "cpu" and cpu_fused), **options)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(groups, **options)


def _rng_state(device: torch.device) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _restore_rng(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _gather_objects(value: dict[str, Any], processes: _Processes) -> list[dict[str, Any]]:
    if processes.world_size == 1:
        return [value]
    out: list[Any] = [None] * processes.world_size
    dist.all_gather_object(out, value)
    return out


def _barrier(processes: _Processes) -> None:
    if processes.world_size > 1:
        dist.barrier()


def _replace(rows: list[torch.Tensor], j: int, new: torch.Tensor | None) -> torch.Tensor:
    """The cached micro-batches ``rows`` concatenated, micro-batch ``j`` replaced by ``new`` (if given)."""
    return torch.cat([*rows[:j], rows[j] if new is None else new, *rows[j + 1 :]])


def _progress_bar(total: int, initial: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm  # type: ignore[import-untyped]

    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, desc="training")
