"""A card for weights that come without one.

From an OpenAI / open_clip state dict the architecture is read off the weights' shapes, as OpenAI's
``clip/model.py`` ``build_model`` does:

- image tower: a vision transformer (kind ``vit``) when ``visual.proj`` exists: width and patch size from
  ``visual.conv1.weight``, layers by counting ``visual.transformer.resblocks.N``, image size = patch size times the
  side of the positional embedding's grid (its rows less the class token), MLP ratio from ``mlp.c_fc``; OpenAI's
  modified ResNet (kind ``modified-resnet``) when ``visual.layer1.0.conv1.weight`` exists: blocks per stage by
  counting ``visual.layerS.N``, stem width from ``visual.layer1.0.conv1.weight`` (its output channels), image size =
  32 times the side of ``visual.attnpool.positional_embedding``'s grid;
- text tower (kind ``text-transformer``, at the top or under ``text.``): vocabulary from ``token_embedding``,
  context length from ``positional_embedding``, width from ``ln_final``, layers by counting
  ``transformer.resblocks.N``; the embedding width from ``text_projection`` (``[width, embed_dim]``).

Two things the weights do not record are guessed. Attention heads: width // 64, OpenAI's rule (open_clip's too,
except for cards that set ``head_width``). The activation: GELU and QuickGELU have the same weights, so it comes
from the kind of file: an OpenAI TorchScript archive means QuickGELU (OpenAI trained with it); a plain state dict
means GELU (open_clip's default, and the activation LAION's and most open_clip weights were trained with).

The inferred architecture is then looked up among the registered cards: a card with the same embedding width and
the same tower configurations (attention heads aside when they were guessed; MLP ratios compared as the hidden
widths they give) is used as is, so OpenAI's ViT-B/32 archive loads as card ``ViT-B-32-quickgelu``. Otherwise the
inferred card, named ``inferred-<file stem>``, is validated like any card (an uninstalled tower kind's error names
the package providing it).

Core imports no plugin: the inferred cards are plain data naming tower kinds.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from clip_core import registry
from clip_core.cards import ModelCard, TowerConfig
from clip_core.catalog import get_card, validate_card
from clip_core.errors import CardError, CheckpointError

__all__ = [
    "STATE_DICT_ACTIVATION",
    "TORCHSCRIPT_ACTIVATION",
    "Activation",
    "ActivationGuess",
    "InferredCard",
    "find_registered",
    "infer_from_state_dict",
    "inferred_name",
    "mlp_ratio",
    "resolve_card",
]

Activation = Literal["gelu", "quick_gelu"]

_HEAD_WIDTH = 64
_RESNET_STRIDE = 32


@dataclass(frozen=True)
class ActivationGuess:
    """The activation assumed for weights that cannot tell it, and why."""

    activation: Activation
    reason: str


#: OpenAI's TorchScript archives: the weights OpenAI trained, with QuickGELU.
TORCHSCRIPT_ACTIVATION = ActivationGuess("quick_gelu", "OpenAI's TorchScript archives hold weights trained with it")
#: Any other state dict: open_clip's default.
STATE_DICT_ACTIVATION = ActivationGuess(
    "gelu", "a state dict cannot tell gelu from quick_gelu; gelu is open_clip's default, used by LAION's weights"
)


@dataclass(frozen=True)
class InferredCard:
    """The card chosen for weights that came without one, and how it was chosen."""

    card: ModelCard
    #: True when ``card`` is a registered card with the weights' architecture, False when it was made for them.
    registered: bool
    #: What the architecture was read from, e.g. "the shapes of the weights".
    origin: str
    #: The activation assumed because the source does not say it, or None when the source says it.
    assumed: ActivationGuess | None = None
    #: A registered card with the same architecture but the other activation, if there is one.
    alternative: str | None = None
    #: Whether the attention heads are a guess (width // 64, OpenAI's rule): weights do not record them.
    heads_guessed: bool = False

    def describe(self) -> list[str]:
        """One line on the card, and one on the activation if it was assumed (what ``clip convert`` prints)."""
        if self.registered:
            lines = [f"card {self.card.name!r}: the registered card matching the architecture read from {self.origin}"]
        else:
            guess = f"; attention heads width // {_HEAD_WIDTH}, OpenAI's rule" if self.heads_guessed else ""
            why = f"no registered card has this architecture{guess}"
            lines = [f"card {self.card.name!r}: inferred from {self.origin} ({why})"]
        if self.assumed is not None:
            other = "gelu" if self.assumed.activation == "quick_gelu" else "quick_gelu"
            fix = (
                f"use card {self.alternative!r} instead (card= or --card)"
                if self.alternative
                else f"pass a card file with activation {other!r} (card= or --card; e.g. the saved card.json, edited)"
            )
            lines.append(
                f"activation {self.assumed.activation!r} assumed ({self.assumed.reason}); if the weights were "
                f"trained with {other!r}, {fix}"
            )
        return lines


def inferred_name(path: Path) -> str:
    """``inferred-<stem>``: the name of a card made for the weights at ``path`` (a valid card name). A commit folder
    of the Hugging Face cache (``models--ORG--NAME/snapshots/<commit>``) is named for its repository's NAME."""
    if path.parent.name == "snapshots" and path.parent.parent.name.startswith("models--"):
        label = path.parent.parent.name.rsplit("--", 1)[-1]
    else:
        label = path.stem if path.is_file() else path.name
    stem = re.sub(r"[^A-Za-z0-9._+-]+", "-", label).strip("-._+")
    return f"inferred-{stem}"[:128] if stem else "inferred"


def mlp_ratio(hidden: int, width: int) -> float:
    """An MLP ratio ``r`` with ``int(width * r) == hidden`` (the hidden width open_clip computes): ``hidden / width``
    when it is a short decimal (4.0, 3.125), else the shortest decimal that works (ViT-g-14's 6144 / 1408 -> 4.364)."""
    exact = hidden / width
    if round(exact, 6) == exact and int(width * exact) == hidden:
        return exact
    for digits in range(12):
        scale = 10**digits
        for ratio in (round(exact, digits), math.ceil(hidden * scale / width) / scale):
            if ratio > 0 and int(width * ratio) == hidden:
                return float(ratio)
    return (hidden + 0.5) / width


def find_registered(card: ModelCard, *, ignore: Iterable[str] = ()) -> ModelCard | None:
    """The first registered card (by name) with ``card``'s architecture, or None.

    Same architecture: the same embedding width, a logit bias or none in both, and tower configurations equal field
    by field, except the fields in ``ignore`` (e.g. ``heads`` when they were guessed), MLP ratios compared as the
    hidden widths they give. Registered cards that do not validate (a tower kind not installed) are skipped.
    """
    ignored = frozenset(ignore)
    wanted = _architecture(card, ignored)
    for name in registry.card_names():
        try:
            candidate = get_card(name)
        except CardError:
            continue
        if _architecture(candidate, ignored) == wanted:
            return candidate
    return None


def resolve_card(
    data: Mapping[str, Any], source: Path, *, origin: str, ignore: Iterable[str] = (), assumed: ActivationGuess | None
) -> InferredCard:
    """Validate inferred card ``data`` and swap it for the registered card with its architecture, if there is one.

    :class:`CardError` when the data does not validate, e.g. its tower kind's plugin is not installed (the message
    names the package).
    """
    ignore = tuple(ignore)
    inferred = validate_card(data, f"inferred from {source}")
    match = find_registered(inferred, ignore=ignore)
    alternative = None
    if assumed is not None:
        other: Activation = "gelu" if assumed.activation == "quick_gelu" else "quick_gelu"
        twin = find_registered(_with_activation(inferred, other), ignore=ignore)
        alternative = twin.name if twin is not None else None
    return InferredCard(match or inferred, match is not None, origin, assumed, alternative, "heads" in ignore)


def infer_from_state_dict(state: Mapping[str, torch.Tensor], source: Path, guess: ActivationGuess) -> InferredCard:
    """The card for an OpenAI / open_clip state dict (see the module docstring), with ``guess``'s activation.

    :class:`CheckpointError` when the keys are not those of an OpenAI / open_clip ViT or modified-ResNet CLIP with
    OpenAI's text tower (e.g. an open_clip timm-tower model): such weights need ``card=``.
    """
    if any(key.startswith("visual.trunk.") for key in state):
        raise CheckpointError(
            f"{source}: image weights under 'visual.trunk.' (an open_clip timm-tower model, or a state dict of this "
            "SDK's ClipModel) do not say their configuration; pass card= (a card name or file)"
        )
    if any(key.startswith(("vision_model.", "text_model.")) for key in state):
        raise CheckpointError(
            f"{source}: transformers-layout weights keep their configuration in config.json; load the directory "
            "holding both, or pass card="
        )
    if "visual.proj" in state and "visual.conv1.weight" in state:
        image = _vit(state, source, guess.activation)
    elif "visual.layer1.0.conv1.weight" in state:
        image = _modified_resnet(state, source)
    else:
        raise CheckpointError(
            f"{source}: cannot tell the image tower from the weights (neither an OpenAI/open_clip vision transformer, "
            "with 'visual.proj', nor a modified ResNet, with 'visual.layer1.0.conv1.weight'); pass card="
        )
    text, embed_dim = _text_transformer(state, source, guess.activation)
    notes = (
        f"Inferred by clip-core from the shapes of {source.name}: attention heads width // {_HEAD_WIDTH} (OpenAI's "
        f"rule; weights do not record them); activation {guess.activation!r} assumed ({guess.reason})."
    )
    data: dict[str, Any] = {
        "name": inferred_name(source),
        "embed_dim": embed_dim,
        "image": image,
        "text": text,
        "tokenizer": {"kind": "clip-bpe"},
        "provenance": {"notes": notes},
    }
    if "logit_bias" in state:
        data["init_logit_bias"] = float(state["logit_bias"].float().reshape(-1)[0])
    return resolve_card(data, source, origin="the shapes of the weights", ignore=("heads",), assumed=guess)


def _vit(state: Mapping[str, torch.Tensor], source: Path, activation: Activation) -> dict[str, Any]:
    width, _, patch, _ = _shape(state, "visual.conv1.weight", 4, source)
    grid = _grid(state, "visual.positional_embedding", source)
    prefix = "visual.transformer.resblocks."
    return {
        "kind": "vit",
        "image_size": patch * grid,
        "patch_size": patch,
        "width": width,
        "layers": _depth(state, prefix, source),
        "heads": max(width // _HEAD_WIDTH, 1),
        "mlp_ratio": mlp_ratio(_shape(state, f"{prefix}0.mlp.c_fc.weight", 2, source)[0], width),
        "activation": activation,
    }


def _modified_resnet(state: Mapping[str, torch.Tensor], source: Path) -> dict[str, Any]:
    return {
        "kind": "modified-resnet",
        "image_size": _RESNET_STRIDE * _grid(state, "visual.attnpool.positional_embedding", source),
        "layers": [_depth(state, f"visual.layer{stage}.", source) for stage in (1, 2, 3, 4)],
        "width": _shape(state, "visual.layer1.0.conv1.weight", 4, source)[0],
    }


def _text_transformer(
    state: Mapping[str, torch.Tensor], source: Path, activation: Activation
) -> tuple[dict[str, Any], int]:
    prefix = "text." if "text.token_embedding.weight" in state else ""
    if f"{prefix}token_embedding.weight" not in state:
        raise CheckpointError(
            f"{source}: cannot tell the text tower from the weights (no OpenAI/open_clip 'token_embedding.weight'); "
            "pass card="
        )
    width = _shape(state, f"{prefix}ln_final.weight", 1, source)[0]
    blocks = f"{prefix}transformer.resblocks."
    text = {
        "kind": "text-transformer",
        "context_length": _shape(state, f"{prefix}positional_embedding", 2, source)[0],
        "vocab_size": _shape(state, f"{prefix}token_embedding.weight", 2, source)[0],
        "width": width,
        "layers": _depth(state, blocks, source),
        "heads": max(width // _HEAD_WIDTH, 1),
        "mlp_ratio": mlp_ratio(_shape(state, f"{blocks}0.mlp.c_fc.weight", 2, source)[0], width),
        "activation": activation,
    }
    return text, _shape(state, f"{prefix}text_projection", 2, source)[1]


def _shape(state: Mapping[str, torch.Tensor], key: str, ndim: int, source: Path) -> tuple[int, ...]:
    if key not in state:
        raise CheckpointError(f"{source}: cannot infer the configuration without key {key!r}; pass card=")
    shape = tuple(state[key].shape)
    if len(shape) != ndim:
        raise CheckpointError(
            f"{source}: cannot infer the configuration: {key} has shape {shape}, expected {ndim} dimensions; pass card="
        )
    return shape


def _grid(state: Mapping[str, torch.Tensor], key: str, source: Path) -> int:
    """The side of the square grid a positional embedding covers (its rows less the one of the class / mean token)."""
    rows = _shape(state, key, 2, source)[0]
    side = math.isqrt(max(rows - 1, 0))
    if side == 0 or side * side != rows - 1:
        raise CheckpointError(
            f"{source}: {key} has {rows} rows, not a square grid plus one token; cannot infer the image size, "
            "pass card="
        )
    return side


def _depth(state: Mapping[str, torch.Tensor], prefix: str, source: Path) -> int:
    """Blocks under ``prefix`` (``prefix + "N."``): the highest N plus one (a missing block is a missing key later)."""
    indices = {
        int(part) for key in state if key.startswith(prefix) and (part := key[len(prefix) :].split(".")[0]).isdigit()
    }
    if not indices:
        raise CheckpointError(f"{source}: no blocks under {prefix!r}; cannot infer the configuration, pass card=")
    return max(indices) + 1


def _architecture(card: ModelCard, ignore: frozenset[str]) -> tuple[Any, ...]:
    return card.embed_dim, card.init_logit_bias is None, _tower(card.image, ignore), _tower(card.text, ignore)


def _tower(config: TowerConfig, ignore: frozenset[str]) -> str:
    data = {key: value for key, value in config.model_dump(mode="json").items() if key not in ignore}
    if isinstance(data.get("mlp_ratio"), (int, float)) and isinstance(data.get("width"), int):
        data["mlp_ratio"] = int(data["width"] * data["mlp_ratio"])  # compared as the hidden width it gives
    return json.dumps(data, sort_keys=True)


def _with_activation(card: ModelCard, activation: Activation) -> ModelCard:
    """``card`` with every tower that has an activation set to ``activation`` (for comparison only)."""
    towers = {
        name: config.model_copy(update={"activation": activation})
        for name, config in (("image", card.image), ("text", card.text))
        if "activation" in type(config).model_fields
    }
    return card.model_copy(update=towers)
