"""Pretrained weight entries: where the weights for a card's tag live, and what they are."""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from clip_core.errors import PluginError

__all__ = ["OPEN_CLIP_FILENAME", "OPEN_CLIP_SAFETENSORS_FILENAME", "PretrainedWeights", "package_pretrained"]

#: The file open_clip's hub repositories hold (open_clip's ``HF_WEIGHTS_NAME``), and its safetensors twin, which
#: open_clip 3.3 fetches instead when the repository has it (``HF_SAFE_WEIGHTS_NAME``).
OPEN_CLIP_FILENAME = "open_clip_pytorch_model.bin"
OPEN_CLIP_SAFETENSORS_FILENAME = "open_clip_model.safetensors"

Activation = Literal["gelu", "quick_gelu"]


class PretrainedWeights(BaseModel):
    """One set of published weights, keyed by ``card`` and ``tag`` (``ViT-B-32`` / ``openai``).

    Exactly one of ``url`` (verified against ``sha256`` after download) or ``hf_hub_id`` (a Hugging Face hub
    repository, with ``filename`` inside it) says where the weights come from. ``activation`` is the activation
    the weights were trained with: ``create_model(card, pretrained=tag)`` builds every tower that has an
    ``activation`` field with it, whatever the card says, so that the weights give the numbers they were
    trained to give (OpenAI's weights need QuickGELU, open_clip's plain cards use GELU).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    card: str = Field(description="Name of the card these weights fit.")
    tag: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")] = Field(description="Pretrained tag.")
    url: str | None = Field(default=None, description="Direct download URL (http or https).")
    hf_hub_id: str | None = Field(default=None, description="Hugging Face hub repository, e.g. 'laion/CLIP-ViT-B-32'.")
    filename: str | None = Field(
        default=None,
        description="File inside the hub repository; default 'open_clip_pytorch_model.bin'. For that file, "
        "'open_clip_model.safetensors' is fetched instead when the repository has it (as open_clip 3.3 does), "
        "unless `sha256` pins the file.",
    )
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = Field(
        default=None, description="SHA-256 of the file, checked after download (a mismatch deletes the file)."
    )
    format: Literal["openai-torchscript", "open_clip", "hf", "clip-sdk"] | None = Field(
        default=None,
        description="What the file holds: 'openai-torchscript' (OpenAI's TorchScript archives), 'open_clip' "
        "(an OpenAI / open_clip state dict), 'hf' (a transformers CLIPModel state dict), 'clip-sdk' (this SDK's "
        "layout).",
    )
    activation: Activation | None = Field(
        default=None,
        description="The activation the weights were trained with; creating the model with this tag switches "
        "every tower's `activation` to it. None: the card's own.",
    )
    license: str | None = Field(default=None, description="License of the weights.")
    dataset: str | None = Field(default=None, description="Data set the weights were trained on.")

    @model_validator(mode="after")
    def _one_source(self) -> PretrainedWeights:
        if (self.url is None) == (self.hf_hub_id is None):
            raise ValueError("give exactly one of `url` or `hf_hub_id`")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"`url` must be an http:// or https:// URL, not {self.url!r}")
        if self.url is not None and self.filename is not None:
            raise ValueError("`filename` names a file in a hub repository; give it with `hf_hub_id`, not `url`")
        return self

    @property
    def source(self) -> str:
        """Where the weights come from: the URL, or ``hf-hub:<repository>/<file>`` (open_clip's notation)."""
        if self.url is not None:
            return self.url
        return f"hf-hub:{self.hf_hub_id}/{self.filename or OPEN_CLIP_FILENAME}"

    def hub_filenames(self) -> tuple[str, ...]:
        """The files of a hub entry to fetch, in order of preference (the first one the repository has wins)."""
        if self.hf_hub_id is None:
            return ()
        filename = self.filename or OPEN_CLIP_FILENAME
        if filename == OPEN_CLIP_FILENAME and self.sha256 is None:
            return (OPEN_CLIP_SAFETENSORS_FILENAME, filename)
        return (filename,)


def package_pretrained(package: str, filename: str = "pretrained.json") -> list[dict[str, Any]]:
    """The pretrained entries of ``package``'s data file ``filename``, JSON of the form
    ``{"weights": {card: {tag: fields}}}`` (other top-level keys, such as ``"about"``, are free), as
    ``dict(card=card, tag=tag, **fields)``, ready for a ``clip_register_pretrained`` hook's ``register(**entry)``.

    :class:`PluginError` naming the package and the path when the file is missing, is not JSON or has another
    shape; the fields themselves are checked by ``register``.
    """
    path = files(package).joinpath(filename)
    where = f"package {package!r}, {path}"
    if not path.is_file():
        raise PluginError(f"{where}: no such pretrained table")
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise PluginError(f"{where}: cannot read the pretrained table: {exc}") from None
    weights = table.get("weights") if isinstance(table, dict) else None
    if not isinstance(weights, dict):
        raise PluginError(f"{where}: expected a top-level object whose 'weights' is {{card: {{tag: fields}}}}")
    entries: list[dict[str, Any]] = []
    for card, tags in weights.items():
        if not isinstance(tags, dict):
            raise PluginError(f"{where}: weights[{card!r}] must be an object {{tag: fields}}")
        for tag, fields in tags.items():
            if not isinstance(fields, dict) or {"card", "tag"} & fields.keys():
                raise PluginError(
                    f"{where}: weights[{card!r}][{tag!r}] must be an object of fields (card and tag are its keys)"
                )
            entries.append(dict(card=card, tag=tag, **fields))
    return entries
