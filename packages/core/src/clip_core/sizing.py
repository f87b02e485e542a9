"""How big a card's model is, found before any memory is allocated, and the guard that refuses what cannot fit.

:func:`estimate_size` builds the model on PyTorch's meta device (shapes without storage, in a fraction of a second
even for a card whose tower is tens of billions of parameters) and counts its parameters and bytes; with
``flops=True`` it also counts the floating-point operations of one image and one text (``torch.utils.flop_counter``
on meta tensors). :func:`check_size` refuses, with a :class:`CardError` naming the parameter count and the memory
needed, a card above ``CLIP_MAX_PARAMS`` or larger than the memory available; ``create_model`` calls it first.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from clip_core.cards import ModelCard
from clip_core.errors import CardError

if TYPE_CHECKING:
    from clip_core.model import ClipModel

__all__ = ["MAX_PARAMS_ENV", "ModelSize", "available_memory", "check_size", "estimate_size"]

#: An explicit limit on a model's parameter count (e.g. ``CLIP_MAX_PARAMS=2e9``), checked with the memory.
MAX_PARAMS_ENV = "CLIP_MAX_PARAMS"


@dataclass(frozen=True)
class ModelSize:
    """A model's size, counted on the meta device."""

    #: Parameters of both towers and the temperature.
    parameters: int
    #: Bytes the parameters and buffers take, in the dtypes the towers create them in.
    bytes: int
    #: Floating-point operations of one image through the image tower, in billions (a multiply-add counts two);
    #: None when not counted or when the tower cannot run on the meta device.
    image_gflops: float | None = None
    #: The same for one text of the card's full context length.
    text_gflops: float | None = None

    def describe(self) -> str:
        """``"151,277,313 parameters (605.1 MB)"``."""
        return f"{self.parameters:,} parameters ({_bytes(self.bytes)})"


def estimate_size(card: ModelCard, flops: bool = False) -> ModelSize | None:
    """The size of the model ``card`` describes, without allocating it; None when a tower cannot be built on the
    meta device (a third-party tower doing real work while it is built). See the module's docstring."""
    from clip_core.model import ClipModel

    try:
        with torch.device("meta"):
            model = ClipModel(card)
    except CardError:
        raise
    except Exception:
        return None
    tensors = [*model.parameters(), *model.buffers()]
    size = ModelSize(
        parameters=sum(p.numel() for p in model.parameters()),
        bytes=sum(t.numel() * t.element_size() for t in tensors),
    )
    if not flops:
        return size
    return ModelSize(size.parameters, size.bytes, _image_gflops(model), _text_gflops(model))


def check_size(card: ModelCard) -> ModelSize | None:
    """:func:`estimate_size`, refusing with a :class:`CardError` naming the parameter count and the memory needed
    a model with more parameters than ``CLIP_MAX_PARAMS`` (when set) or more bytes than the memory available."""
    size = estimate_size(card)
    if size is None:
        return None
    limit = _max_params()
    if limit is not None and size.parameters > limit:
        raise CardError(
            f"card {card.name!r} describes a model of {size.describe()}, above {MAX_PARAMS_ENV}={limit:,}; check "
            "the card's widths and depths, or raise the limit"
        )
    available = available_memory()
    if available is not None and size.bytes > available:
        raise CardError(
            f"card {card.name!r} describes a model of {size.describe()}, more than the {_bytes(available)} of memory "
            "available; check the card's widths and depths (a typo?), or free memory"
        )
    return size


def available_memory() -> int | None:
    """Bytes of memory available for new allocations (``MemAvailable`` of ``/proc/meminfo`` on Linux, else the
    free physical pages), None when the system does not say."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def _max_params() -> int | None:
    raw = os.environ.get(MAX_PARAMS_ENV, "").strip()
    if not raw:
        return None
    try:
        return int(float(raw))
    except ValueError:
        raise CardError(f"{MAX_PARAMS_ENV}={raw!r} is not a number of parameters (e.g. 2e9 or 2000000000)") from None


def _bytes(count: int) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count / 1e3:.1f} kB"


def _image_gflops(model: ClipModel) -> float | None:
    size = model.card.preprocess.image_size
    pixels = torch.zeros(1, 3, size, size, device="meta", dtype=_dtype(model.visual))
    return _gflops(model.visual, pixels)


def _text_gflops(model: ClipModel) -> float | None:
    ids = torch.zeros(1, model.card.tokenizer.context_length, dtype=torch.long, device="meta")
    return _gflops(model.text, ids)


def _gflops(tower: nn.Module, inputs: torch.Tensor) -> float | None:
    """FLOPs of one input through the whole tower: through ``forward_intermediates`` (every block on every token,
    as FLOP tables count) when the tower has it, else through its forward; None if it cannot run on meta."""
    from torch.utils.flop_counter import FlopCounterMode

    method = getattr(tower, "forward_intermediates", None)
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            if callable(method):
                method(inputs, 1)
            else:
                tower(inputs)
    except Exception:
        return None
    return float(counter.get_total_flops()) / 1e9


def _dtype(module: nn.Module) -> torch.dtype:
    return next((p.dtype for p in module.parameters() if p.is_floating_point()), torch.float32)
