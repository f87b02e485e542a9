"""Timing helpers shared by the benchmarks: variants run in turn, round after round, after a warm-up; ratios of
their times per round."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def interleaved_seconds(
    runs: dict[str, Callable[[], object]], rounds: int = 7, warmup: int = 1
) -> dict[str, list[float]]:
    """Wall times of every ``run`` over ``rounds`` rounds, each round running every variant once in turn, so that
    a busy neighbour slows all variants alike; compare them through :func:`median_ratio`."""
    for run in runs.values():
        for _ in range(warmup):
            run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return times


def median_ratio(reference: list[float], other: list[float]) -> float:
    """The median over rounds of ``reference / other``: how many times faster ``other`` ran."""
    return statistics.median(r / o for r, o in zip(reference, other, strict=True))
