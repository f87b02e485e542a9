"""Counters and histograms for ``GET /metrics`` in Prometheus's text format (no client library needed)."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Mapping

__all__ = ["BATCH_BUCKETS", "LATENCY_BUCKETS", "Metrics"]

#: Upper bounds of the request latency histogram, in seconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Upper bounds of the batch size histogram, in inputs.
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)

_Labels = tuple[tuple[str, str], ...]


class _Histogram:
    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * len(bounds)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        for position, bound in enumerate(self.bounds):
            if value <= bound:
                self.counts[position] += 1
                break
        self.total += value
        self.count += 1


class Metrics:
    """The service's metrics: requests by route and status, request latency by route, batch sizes by modality."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[_Labels, int] = defaultdict(int)
        self._latency: dict[_Labels, _Histogram] = {}
        self._batches: dict[_Labels, _Histogram] = {}
        self._inputs: dict[_Labels, int] = defaultdict(int)

    def request(self, route: str, status: int, seconds: float) -> None:
        """Count a finished request and its latency."""
        with self._lock:
            self._requests[(("route", route), ("status", str(status)))] += 1
            labels = (("route", route),)
            self._latency.setdefault(labels, _Histogram(LATENCY_BUCKETS)).observe(seconds)

    def batch(self, modality: str, size: int) -> None:
        """Count a forward pass of ``size`` inputs."""
        with self._lock:
            labels = (("modality", modality),)
            self._batches.setdefault(labels, _Histogram(BATCH_BUCKETS)).observe(size)
            self._inputs[labels] += size

    def render(self, waiting: Mapping[str, int] | None = None) -> str:
        """Everything in Prometheus's text exposition format (version 0.0.4), with the inputs ``waiting`` for the
        model per modality."""
        with self._lock:
            lines = ["# HELP clip_requests_total HTTP requests answered.", "# TYPE clip_requests_total counter"]
            lines += [f"clip_requests_total{_format(key)} {value}" for key, value in sorted(self._requests.items())]
            lines += _histogram_lines("clip_request_seconds", "Time to answer a request, in seconds.", self._latency)
            lines += _histogram_lines("clip_batch_size", "Inputs per forward pass of the model.", self._batches)
            lines += ["# HELP clip_inputs_total Inputs embedded.", "# TYPE clip_inputs_total counter"]
            lines += [f"clip_inputs_total{_format(labels)} {value}" for labels, value in sorted(self._inputs.items())]
        lines += ["# HELP clip_inputs_waiting Inputs waiting for the model.", "# TYPE clip_inputs_waiting gauge"]
        lines += [
            f"clip_inputs_waiting{_format((('modality', key),))} {n}" for key, n in sorted((waiting or {}).items())
        ]
        return "\n".join(lines) + "\n"


def _histogram_lines(name: str, description: str, histograms: dict[_Labels, _Histogram]) -> list[str]:
    lines = [f"# HELP {name} {description}", f"# TYPE {name} histogram"]
    for labels, histogram in sorted(histograms.items()):
        cumulative = 0
        for bound, count in zip(histogram.bounds, histogram.counts, strict=True):
            cumulative += count
            lines.append(f"{name}_bucket{_format((*labels, ('le', f'{bound:g}')))} {cumulative}")
        lines.append(f"{name}_bucket{_format((*labels, ('le', '+Inf')))} {histogram.count}")
        lines.append(f"{name}_sum{_format(labels)} {histogram.total:.6f}")
        lines.append(f"{name}_count{_format(labels)} {histogram.count}")
    return lines


def _format(labels: _Labels) -> str:
    escaped = (f'{key}="{_escape(value)}"' for key, value in labels)
    return "{" + ",".join(escaped) + "}" if labels else ""


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
