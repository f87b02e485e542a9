"""The training log: ``OUT/log.jsonl``, and TensorBoard when asked.

The first process appends one JSON line per logged update (every ``log_every`` updates and the last one) and
flushes it at once, so the file can be followed while the run goes on and keeps every line written before a kill;
a resumed run appends to the same file. A line holds ``step``, ``loss`` (of that update's global batch), ``lr``,
``logit_scale`` (the temperature, exponentiated), ``samples_per_second`` (mean over the updates since the last
line), ``epoch`` (updates over updates per epoch) and ``skipped`` (samples skipped so far by this run, summed over
the processes: see :mod:`clip_core.training.shards`). An update after which the model was evaluated (``eval_data``:
see :mod:`clip_core.training.evaluation`) always has a line, and it also holds ``eval``: the metrics by
CLIP_benchmark's names, as :func:`~clip_core.eval.evaluate` gives them (``{"acc1": 0.83, "acc5": 1.0, ...}``;
``null`` where a metric is undefined, as ``acc5`` with fewer than 5 classes). With ``tensorboard`` the same scalars
go to a TensorBoard event file in ``OUT/tensorboard`` (the ``tensorboard`` package:
``pip install 'clip-core[tensorboard]'``), as ``train/<name>`` and ``eval/<metric>``.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import IO, Any

from clip_core.errors import InputError

__all__ = ["LOG_FILE", "TrainingLog", "progress_bar", "read_log"]

#: The log's file name in the output folder.
LOG_FILE = "log.jsonl"


class TrainingLog:
    """Appends log lines to ``out/log.jsonl`` (and TensorBoard) when ``enabled`` (on the first process)."""

    def __init__(self, out: Path, *, enabled: bool, tensorboard: bool) -> None:
        self._file: IO[str] | None = None
        self._board: Any = None
        if not enabled:
            return
        if tensorboard:
            self._board = _summary_writer(out / "tensorboard")
        out.mkdir(parents=True, exist_ok=True)
        self._file = open(out / LOG_FILE, "a", encoding="utf-8")  # noqa: SIM115 (kept open: see close)

    def write(self, record: dict[str, Any]) -> None:
        """Append one line (and its scalars to TensorBoard), flushed."""
        if self._file is not None:
            self._file.write(json.dumps(record) + "\n")
            self._file.flush()
        if self._board is not None:
            for name, value in record.items():
                if name != "step" and isinstance(value, (int, float)):
                    self._board.add_scalar(f"train/{name}", value, record["step"])
            for name, value in record.get("eval", {}).items():
                if value is not None:
                    self._board.add_scalar(f"eval/{name}", value, record["step"])
            self._board.flush()

    def close(self) -> None:
        """Close the file and the TensorBoard writer."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._board is not None:
            self._board.close()
            self._board = None


def read_log(out: str | Path) -> list[dict[str, Any]]:
    """The lines of ``out/log.jsonl`` (a line torn by a kill is left out)."""
    lines = (Path(out) / LOG_FILE).read_text(encoding="utf-8").splitlines()
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def _summary_writer(folder: Path) -> Any:
    if importlib.util.find_spec("tensorboard") is None:
        raise InputError("--tensorboard needs the tensorboard package: pip install 'clip-core[tensorboard]'")
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise InputError("--tensorboard needs the tensorboard package: pip install 'clip-core[tensorboard]'") from None
    return SummaryWriter(log_dir=str(folder))


def progress_bar(total: int, initial: int, enabled: bool) -> Any:
    """A tqdm bar of the updates (None when not ``enabled``)."""
    if not enabled:
        return None
    from tqdm import tqdm  # type: ignore[import-untyped]

    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, desc="training")
