"""The errors a user of clip-sdk can see.

Every error caused by user input derives from :class:`ClipError`, so ``except clip_core.ClipError`` catches
all of them and nothing else. Messages say what was wrong and where (field path, key, file or plugin).
"""

from __future__ import annotations

__all__ = [
    "CardError",
    "CheckpointError",
    "ClipError",
    "ExportError",
    "InputError",
    "PluginError",
    "PretrainedError",
]


class ClipError(Exception):
    """Base class of every error clip-sdk raises for a problem the user can fix."""


class CardError(ClipError, ValueError):
    """A model card is invalid, unknown or cannot be read."""


class CheckpointError(ClipError):
    """A checkpoint is missing, corrupt, unsafe, or does not fit the model (missing/unexpected/mis-shaped keys)."""


class ExportError(ClipError):
    """A model cannot be written in the format asked for (the format has no equivalent of a tower, a setting, ...)."""


class PluginError(ClipError):
    """A plugin cannot be loaded, declares an incompatible API version, or registers something invalid."""


class PretrainedError(ClipError):
    """A pretrained tag is unknown for its card, its weights cannot be obtained, or a Hugging Face hub repository
    (``hf-hub:ORG/NAME``) cannot be read from or pushed to."""


class InputError(ClipError, ValueError):
    """Tensors or other inputs passed to a model or tokenizer have the wrong type, shape or values."""
