"""Run by ``test_distributed.py`` under ``torchrun`` (gloo, CPU): every loss on this rank's rows of a fixed batch.

``python -m torch.distributed.run --standalone --nproc_per_node 2 distributed_worker.py OUT_DIR`` writes
``OUT_DIR/rank{r}.pt``: for each case and split, the loss value and the gradients this rank computes. The test
computes the same cases on the whole batch in one process (``compute`` with no process group) and compares.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

import clip_core
from clip_losses import ClipLoss, NTXentLoss, SigLipLoss, gather_with_grad

WORLD_SIZE = 2
#: Rows of the whole batch held by each rank.
SPLITS = {"even": (4, 4), "uneven": (3, 5)}
#: The losses, as a training run would build them.
CASES: dict[str, Callable[[], nn.Module]] = {
    "clip": lambda: ClipLoss(),
    "clip-local": lambda: ClipLoss(local_loss=True),
    "siglip-ring": lambda: SigLipLoss(exchange="ring"),
    "siglip-gather": lambda: SigLipLoss(exchange="gather"),
    "ntxent": lambda: NTXentLoss(temperature=0.3),
    "ntxent-local": lambda: NTXentLoss(temperature=0.3, local_loss=True),
}


def whole_batch() -> dict[str, torch.Tensor]:
    """Raw features of 8 image-text pairs and the two projections ("towers") every rank holds a replica of."""
    generator = torch.Generator().manual_seed(0)
    return {
        name: torch.randn(*shape, generator=generator, dtype=torch.float64)
        for name, shape in {"images": (8, 10), "texts": (8, 10), "image_proj": (10, 6), "text_proj": (10, 6)}.items()
    }


def compute(case: str, rows: slice) -> dict[str, torch.Tensor]:
    """The loss of the pairs ``rows`` and the gradients of everything it depends on."""
    data = whole_batch()
    image_proj, text_proj = data["image_proj"].requires_grad_(), data["text_proj"].requires_grad_()
    scale = torch.tensor(4.0, dtype=torch.float64, requires_grad=True)
    bias = torch.tensor(-2.0, dtype=torch.float64, requires_grad=True)
    first, second = data["images"][rows] @ image_proj, data["texts"][rows] @ text_proj
    if not case.startswith("ntxent"):  # NT-Xent normalises itself; CLIP and SigLIP take unit embeddings
        first, second = F.normalize(first, dim=-1), F.normalize(second, dim=-1)
    first.retain_grad()
    second.retain_grad()
    loss = CASES[case]()
    if case.startswith("clip"):
        value = loss(first, second, scale)
    elif case.startswith("siglip"):
        value = loss(first, second, scale, bias)
    else:
        value = loss(first, second)
    value.backward()
    grads = {"first": first.grad, "second": second.grad, "image_proj": image_proj.grad, "text_proj": text_proj.grad}
    grads |= {"scale": scale.grad, "bias": bias.grad}
    return {"value": value.detach()} | {name: grad for name, grad in grads.items() if grad is not None}


def rows_of(split: str, rank: int) -> slice:
    sizes = SPLITS[split]
    return slice(sum(sizes[:rank]), sum(sizes[: rank + 1]))


def main(out_dir: Path) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    assert dist.get_world_size() == WORLD_SIZE
    results: dict[str, object] = {
        f"{case}/{split}": compute(case, rows_of(split, rank)) for case in CASES for split in SPLITS
    }
    results["gathered"] = gather_with_grad(whole_batch()["images"][rows_of("uneven", rank)])
    try:  # rank 1 embeds in a narrower space: both ranks must refuse, neither may hang
        width = 6 - rank
        ClipLoss()(torch.ones(2, width), torch.ones(2, width), 1.0)
    except clip_core.InputError as error:
        results["width_error"] = str(error)
    torch.save(results, out_dir / f"rank{rank}.pt")
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
