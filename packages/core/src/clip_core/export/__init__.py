"""Formats out: a model written as a folder that transformers, open_clip or ONNX Runtime load with their own code.

:func:`export_model` picks the format and writes atomically; :mod:`clip_core.export.transformers` and
:mod:`clip_core.export.open_clip` map a card to those libraries' configurations; the weights leave through the
exporters each tower kind registers (:mod:`clip_core.export.layouts`).
"""

from __future__ import annotations

from clip_core.export.formats import EXPORT_FORMATS, ExportFormat, export_model
from clip_core.export.layouts import export_state_dict

__all__ = ["EXPORT_FORMATS", "ExportFormat", "export_model", "export_state_dict"]
