"""Two real processes (``torchrun``, gloo on CPU), each holding part of a batch, train as one process on all of it.

Each rank computes every loss on its rows (even and uneven splits) and back-propagates. The loss value on every
rank must be the single-process value on the whole batch; each rank's embeddings must receive ``world_size``
times their single-process gradient, and the ranks' parameter gradients (two projection "towers", the logit
scale and bias) averaged, as ``DistributedDataParallel`` averages them, must be the single-process gradients.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

WORKER_PATH = Path(__file__).with_name("distributed_worker.py")


def load_worker() -> ModuleType:
    spec = importlib.util.spec_from_file_location("distributed_worker", WORKER_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


worker = load_worker()
RUNS = [f"{case}/{split}" for case in worker.CASES for split in worker.SPLITS]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """What each of the two ranks computed (``torchrun --standalone`` picks a free port)."""
    out = tmp_path_factory.mktemp("ranks")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [*command, str(WORKER_PATH), str(out)], capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert done.returncode == 0, f"torchrun failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return [torch.load(out / f"rank{rank}.pt") for rank in range(worker.WORLD_SIZE)]


def single_process(run: str) -> dict[str, torch.Tensor]:
    case, _ = run.split("/")
    return worker.compute(case, slice(None))  # type: ignore[no-any-return]


@pytest.mark.parametrize("run", RUNS)
def test_every_rank_reports_the_single_process_loss_of_the_whole_batch(ranks: list[dict[str, Any]], run: str) -> None:
    expected = single_process(run)["value"]
    for rank in ranks:
        torch.testing.assert_close(rank[run]["value"], expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("run", RUNS)
def test_each_rank_embeddings_get_world_size_times_their_single_process_gradient(
    ranks: list[dict[str, Any]], run: str
) -> None:
    expected = single_process(run)
    split = run.split("/")[1]
    for index, rank in enumerate(ranks):
        rows = worker.rows_of(split, index)
        for name in ("first", "second"):
            torch.testing.assert_close(
                rank[run][name], worker.WORLD_SIZE * expected[name][rows], rtol=1e-10, atol=1e-12
            )


@pytest.mark.parametrize("run", RUNS)
def test_parameter_gradients_averaged_over_ranks_are_the_single_process_gradients(
    ranks: list[dict[str, Any]], run: str
) -> None:
    expected = single_process(run)
    parameters = [name for name in ("image_proj", "text_proj", "scale", "bias") if name in expected]
    assert "scale" in parameters or run.startswith("ntxent")
    for name in parameters:
        averaged = sum(rank[run][name] for rank in ranks) / len(ranks)
        torch.testing.assert_close(averaged, expected[name], rtol=1e-10, atol=1e-12)


def test_gather_with_grad_concatenates_uneven_rows_in_rank_order(ranks: list[dict[str, Any]]) -> None:
    whole = worker.whole_batch()["images"]
    for rank in ranks:
        assert torch.equal(rank["gathered"], whole)


def test_ranks_with_different_embedding_widths_all_raise_input_error(ranks: list[dict[str, Any]]) -> None:
    for rank in ranks:
        assert rank.get("width_error") == "ranks hold embeddings of different widths: [6, 5] (in rank order)"
