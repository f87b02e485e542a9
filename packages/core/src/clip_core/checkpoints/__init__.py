"""Loading checkpoints in every supported format: this SDK's directories, OpenAI's TorchScript archives, OpenAI /
open_clip state dicts, open_clip folders and transformers ``CLIPModel`` directories; with a card, or with one
inferred from the weights (:mod:`clip_core.checkpoints.infer`), from ``open_clip_config.json``
(:mod:`clip_core.checkpoints.openclip`) or from ``config.json`` (:mod:`clip_core.checkpoints.hf`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from clip_core.cards import ModelCard
from clip_core.catalog import CardSpec, get_card
from clip_core.checkpoints.hf import infer_from_hf_config, is_hf_directory, read_hf_weights
from clip_core.checkpoints.infer import (
    STATE_DICT_ACTIVATION,
    TORCHSCRIPT_ACTIVATION,
    InferredCard,
    infer_from_state_dict,
)
from clip_core.checkpoints.layouts import convert_state_dict, detect_layout
from clip_core.checkpoints.native import is_native_checkpoint, load_native, save_pretrained
from clip_core.checkpoints.openclip import infer_from_open_clip_config, is_open_clip_directory, read_open_clip_weights
from clip_core.checkpoints.statedict import STATE_DICT_SUFFIXES, read_state_dict
from clip_core.checkpoints.strict import load_state_dict_strict, model_from_state, skeleton
from clip_core.checkpoints.torchscript import is_torchscript, read_torchscript
from clip_core.errors import CheckpointError
from clip_core.hub.hfhub import hub_snapshot, is_hub_name

if TYPE_CHECKING:
    from clip_core.model import ClipModel

__all__ = [
    "LoadedCheckpoint",
    "convert_checkpoint",
    "load_checkpoint",
    "load_state_dict_strict",
    "open_checkpoint",
    "save_pretrained",
]


@dataclass(frozen=True)
class LoadedCheckpoint:
    """A loaded model, the format it was read from, and how its card was chosen."""

    model: ClipModel
    source: Path
    #: "clip-sdk directory", "open_clip directory", "transformers CLIPModel directory", "TorchScript archive" or
    #: "state dict".
    format: str
    #: How the card was inferred, or None when it was given or read from the checkpoint's card.json.
    inferred: InferredCard | None = None

    def describe(self) -> list[str]:
        """What was read and which card was used (and the activation assumed, if any), one line each."""
        lines = [f"read {self.source} ({self.format})"]
        if self.inferred is not None:
            lines += self.inferred.describe()
        else:
            lines.append(f"card {self.model.card.name!r}")
        return lines


def load_checkpoint(path: str | os.PathLike[str], card: CardSpec | None = None) -> ClipModel:
    """Load a model from ``path`` and return it in eval mode (float32, whatever the file's dtype).

    ``path`` is one of:

    - a Hugging Face hub name, ``hf-hub:ORG/NAME`` or ``hf-hub:ORG/NAME@REVISION`` (a branch, tag or commit), whose
      repository holds one of the folders below (this SDK's, open_clip's or transformers'); it is fetched into the
      standard Hugging Face cache (``HF_HOME``) and read from there, offline too (``HF_HUB_OFFLINE=1``) once
      cached; not cached and unreachable, it fails within seconds with :class:`PretrainedError` (see
      :mod:`clip_core.hub.hfhub`);
    - a directory written by ``ClipModel.save_pretrained`` (``card.json`` + ``model.safetensors``);
    - an open_clip folder (``open_clip_config.json`` + ``open_clip_model.safetensors`` or
      ``open_clip_pytorch_model.bin``), as open_clip's hub repositories hold them;
    - a transformers ``CLIPModel`` directory (``config.json`` + ``model.safetensors`` or ``pytorch_model.bin``, or
      their sharded ``.index.json``);
    - an OpenAI TorchScript archive (the ``.pt`` files OpenAI publishes), of which only the state dict is read;
    - a state-dict file (``.safetensors``, ``.pt``, ``.pth``, ``.bin``, ``.ckpt``; also under a ``state_dict`` key or
      with DataParallel's ``module.`` prefix) in OpenAI's / open_clip's, transformers' or this SDK's layout.

    Foreign layouts are converted by each tower's registered converter. Files are read without running code
    (safetensors, ``torch.load`` with ``weights_only=True``, TorchScript's loader for archives).

    ``card`` (a name, file, dict or ``ModelCard``) says the configuration. Without it, the card is the directory's
    ``card.json``, is read from open_clip's ``open_clip_config.json`` or transformers' ``config.json``, or is inferred
    from the shapes of an OpenAI / open_clip state dict as OpenAI's ``build_model`` does (attention heads = width //
    64); a registered card with the same architecture is used when there is one (OpenAI's ViT-B/32 archive loads as
    ``ViT-B-32-quickgelu``), otherwise a card named ``inferred-<file stem>``. Weights cannot tell GELU from QuickGELU: a
    TorchScript archive is taken to be OpenAI's, trained with ``quick_gelu``; any other state dict is taken to use
    ``gelu``, open_clip's default. For OpenAI's weights saved as a state dict, pass the ``-quickgelu`` card (e.g.
    ``card="ViT-B-32-quickgelu"``) or a card file; ``clip convert`` prints the card and activation it used. open_clip
    models with timm image towers (``visual.trunk.*``) need ``card``.

    Loading is strict: missing, unexpected or mis-shaped keys raise :class:`CheckpointError` naming them, as do
    truncated or corrupt files (naming the file).
    """
    return open_checkpoint(path, card).model


def open_checkpoint(path: str | os.PathLike[str], card: CardSpec | None = None) -> LoadedCheckpoint:
    """:func:`load_checkpoint`, also saying which format was read and how the card was chosen."""
    inferred: InferredCard | None = None
    source = hub_snapshot(str(path)) if is_hub_name(path) else Path(path)
    if not source.exists():
        raise CheckpointError(f"{source}: no such file or directory")
    if is_native_checkpoint(source):
        return LoadedCheckpoint(load_native(source, card), source, "clip-sdk directory")
    if is_open_clip_directory(source):
        if card is None:
            inferred = infer_from_open_clip_config(source)
            model_card = inferred.card
        else:
            model_card = get_card(card)
        model = _from_foreign(read_open_clip_weights(source), model_card, source)
        return LoadedCheckpoint(model, source, "open_clip directory", inferred)
    if is_hf_directory(source):
        if card is None:
            inferred = infer_from_hf_config(source)
            model_card = inferred.card
        else:
            model_card = get_card(card)  # a card that does not validate fails before the weights are read
        model = _from_foreign(read_hf_weights(source), model_card, source)
        return LoadedCheckpoint(model, source, "transformers CLIPModel directory", inferred)
    if source.is_dir():
        raise CheckpointError(
            f"{source}: a checkpoint directory needs a card.json and a model.safetensors (this SDK's), an "
            "open_clip_config.json and an open_clip_model.safetensors or open_clip_pytorch_model.bin (open_clip's), "
            "or a config.json and a model.safetensors or pytorch_model.bin (transformers')"
        )
    if source.suffix not in STATE_DICT_SUFFIXES:
        raise CheckpointError(
            f"{source}: unsupported checkpoint format (expected a directory or a {', '.join(STATE_DICT_SUFFIXES)} file)"
        )
    given = get_card(card) if card is not None else None
    torchscript = is_torchscript(source)
    state = read_torchscript(source) if torchscript else read_state_dict(source)
    if given is None:
        inferred = _infer(state, source, torchscript)
        given = inferred.card
    model = _from_foreign(state, given, source)
    return LoadedCheckpoint(model, source, "TorchScript archive" if torchscript else "state dict", inferred)


def convert_checkpoint(
    source: str | os.PathLike[str], target: str | os.PathLike[str], card: CardSpec | None = None
) -> LoadedCheckpoint:
    """Load ``source`` (any format :func:`load_checkpoint` reads, with ``card`` or an inferred card) and save it to
    ``target`` in this SDK's format (atomically, see ``ClipModel.save_pretrained``)."""
    loaded = open_checkpoint(source, card)
    save_pretrained(loaded.model, target)
    return loaded


def _infer(state: Mapping[str, torch.Tensor], source: Path, torchscript: bool) -> InferredCard:
    hf_layout = any(key.startswith(("vision_model.", "text_model.")) for key in state)
    if hf_layout and not torchscript and is_hf_directory(source.parent):  # a transformers file beside its config
        return infer_from_hf_config(source.parent)
    return infer_from_state_dict(state, source, TORCHSCRIPT_ACTIVATION if torchscript else STATE_DICT_ACTIVATION)


def _from_foreign(state: Mapping[str, torch.Tensor], card: ModelCard, source: Path) -> ClipModel:
    """A model for ``card`` holding ``state`` (in any layout), converted by the towers' converters, strictly."""
    model = skeleton(card)
    layout = detect_layout(state, set(model.state_dict()))
    converted = convert_state_dict(state, card, layout, str(source))
    return model_from_state(card, converted, str(source), model)
