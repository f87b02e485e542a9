"""The training state a checkpoint holds beside the weights, and resuming from it: which checkpoint, what a
resumed run may change, and the random states.

A resumed run restores the weights, the optimizer and scheduler state, the update count and this process's random
number generators (torch, Python's ``random`` and, on a GPU, CUDA), so that on CPU it continues bit for bit as the
uninterrupted run. The checkpoint's folder layout is :mod:`clip_core.training.checkpoint`'s.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

import torch

from clip_core.checkpoints.native import read_safetensors
from clip_core.checkpoints.strict import load_state_dict_strict
from clip_core.errors import CheckpointError, InputError
from clip_core.model import ClipModel
from clip_core.processes import Processes, gather_objects
from clip_core.training.checkpoint import STATE_FORMAT, checkpoints, latest_checkpoint, read_training_state
from clip_core.training.config import TrainConfig
from clip_core.training.schedule import CosineWithWarmup

__all__ = ["restore_rng", "resume_from", "resume_point", "rng_state", "rng_states", "training_state"]

logger = logging.getLogger("clip_core.training")

#: Options that shape the optimizer's state: a resumed run must keep them.
_MUST_MATCH = frozenset({"freeze", "loss"})
#: Options that change nothing a resumed run computes (where files go, how progress shows, when to save).
_FREE_TO_CHANGE = frozenset(
    {
        "resume",
        "out",
        "progress",
        "log_every",
        "workers",
        "device",
        "save_every",
        "keep_checkpoints",
        "checkpoints",
        "tensorboard",
        "eval_data",
        "eval_every",
        "eval_task",
    }
)


def training_state(
    step: int,
    total_steps: int,
    model: ClipModel,
    optimizer: torch.optim.Optimizer,
    scheduler: CosineWithWarmup,
    config: TrainConfig,
    generators: list[dict[str, Any]],
) -> dict[str, Any]:
    """What a checkpoint's ``training_state.pt`` holds after update ``step``; ``generators``: every process's
    :func:`rng_state`, in rank order."""
    return {
        "format": STATE_FORMAT,
        "step": step,
        "total_steps": total_steps,
        "world_size": len(generators),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": generators,
        "card": model.card.model_dump(mode="json"),
        "config": config.model_dump(mode="json"),
    }


def resume_point(config: TrainConfig) -> Path | None:
    """The checkpoint ``config.resume`` names (``"latest"``: the newest in ``out/checkpoints``), or None.

    Starting afresh (no ``resume``) where checkpoints exist already is refused, so that no run is overwritten.
    """
    resume, folder = config.resume, config.out / "checkpoints"
    if resume is None:
        if checkpoints(folder):
            raise InputError(f"{folder} already holds checkpoints; resume with --resume latest, or use a new --out")
        return None
    if resume == "latest":
        return latest_checkpoint(folder)
    if not Path(resume).is_dir():
        raise InputError(f"{resume}: no such checkpoint folder")
    return Path(resume)


def resume_from(
    checkpoint: Path,
    model: ClipModel,
    optimizer: torch.optim.Optimizer,
    scheduler: CosineWithWarmup,
    config: TrainConfig,
    processes: Processes,
    device: torch.device,
) -> tuple[int, tuple[int, int, int]]:
    """Restore ``checkpoint`` into the model, optimizer, scheduler and random states; returns its update count and
    the shard stream's position after it (see :mod:`clip_core.training.shards`; ``(0, 0, 0)`` if it has none).

    :class:`CheckpointError` if it was written for another card, by a run with another ``freeze`` or ``loss``,
    or with an optimizer state that does not fit; other changed options are logged. Random states are restored
    when the checkpoint holds one per process of this run, and reseeded (``seed + step``) otherwise.
    """
    state = read_training_state(checkpoint)
    saved_card = state.get("card")
    if saved_card is not None and saved_card != model.card.model_dump(mode="json"):
        raise CheckpointError(f"{checkpoint} was written for another card than {model.card.name!r}")
    saved, current = state.get("config", {}), config.model_dump(mode="json")
    changed = sorted(k for k in current if k not in _FREE_TO_CHANGE and saved.get(k, current[k]) != current[k])
    clashes = [f"{k}={saved[k]!r} (now {current[k]!r})" for k in changed if k in _MUST_MATCH]
    if clashes:
        raise CheckpointError(
            f"{checkpoint} was written by a run with {', '.join(clashes)}; resume with the same options"
        )
    if changed:
        logger.warning("resuming from %s with changed options: %s", checkpoint, ", ".join(changed))
    weights = read_safetensors(checkpoint / "model.safetensors")
    load_state_dict_strict(model, weights, str(checkpoint / "model.safetensors"))
    try:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
    except (ValueError, KeyError) as exc:
        raise CheckpointError(f"{checkpoint}: the optimizer state does not fit this run ({exc})") from None
    step = int(state["step"])
    generators = state["rng"]
    if len(generators) == processes.world_size:
        restore_rng(generators[processes.rank], device)
    else:
        logger.warning(
            "the checkpoint holds random states of %d processes, this run has %d: random states are reseeded",
            len(generators),
            processes.world_size,
        )
        torch.manual_seed(config.seed + step)
    if processes.main:
        logger.info("resumed from %s at update %d", checkpoint, step)
    pass_, position, index = state.get("data_cursor", (0, 0, 0))
    return step, (int(pass_), int(position), int(index))


def rng_state(device: torch.device) -> dict[str, Any]:
    """This process's random number generator states (torch, Python, and CUDA's on a GPU)."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def rng_states(processes: Processes, device: torch.device) -> list[dict[str, Any]]:
    """Every process's :func:`rng_state`, in rank order (every process must call this)."""
    return gather_objects(rng_state(device), processes)


def restore_rng(state: dict[str, Any], device: torch.device) -> None:
    """Set the random number generators to ``state`` (from :func:`rng_state`, as a checkpoint gives it back)."""
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
