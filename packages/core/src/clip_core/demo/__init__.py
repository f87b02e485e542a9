"""``clip demo``: a tiny CLIP trained from scratch on generated coloured shapes, in a couple of minutes on a CPU.

See :mod:`clip_core.demo.run` for what it does, :mod:`clip_core.demo.shapes` for the data and
:mod:`clip_core.demo.evaluation` for how it is scored.
"""

from __future__ import annotations

from clip_core.demo.run import DemoResult, demo_card, run_demo

__all__ = ["DemoResult", "demo_card", "run_demo"]
