"""Evaluation: zero-shot classification, zero-shot retrieval and linear probes, with CLIP_benchmark's numbers.

- :mod:`~clip_core.eval.data`: :class:`EvalData` and :func:`load_data` (image folders, caption lists, and
  :mod:`~clip_core.eval.wds`, CLIP_benchmark's ``wds`` layout, read and written).
- :mod:`~clip_core.eval.features`: image features through the embedding pipeline, text features.
- :mod:`~clip_core.eval.metrics` and :mod:`~clip_core.eval.linear_probe`: the metrics, by CLIP_benchmark's names
  and formulas.
- :mod:`~clip_core.eval.evaluate`: :func:`evaluate`, the Python API behind ``clip eval``, returning an
  :class:`EvalResult` (:mod:`~clip_core.eval.result`), drawn by :mod:`~clip_core.eval.plots`.
"""

from __future__ import annotations

from clip_core.eval.data import EvalData, load_data
from clip_core.eval.evaluate import TASKS, Task, evaluate
from clip_core.eval.linear_probe import ProbeSettings
from clip_core.eval.result import EvalResult
from clip_core.eval.wds import write_wds

__all__ = ["TASKS", "EvalData", "EvalResult", "ProbeSettings", "Task", "evaluate", "load_data", "write_wds"]
