"""Pushing a model to the Hugging Face hub: the folder in one of the layouts clip-sdk writes, with a model card
``README.md`` (the card's table, the preprocessing, and how to load the repository here, in open_clip and in
transformers), uploaded through ``huggingface_hub`` (``create_repo`` + ``upload_folder``).

:func:`prepare_push` writes what would be uploaded, with no network; :func:`push_to_hub` uploads it. The hub
address and offline mode follow ``HF_ENDPOINT`` and ``HF_HUB_OFFLINE`` (see :mod:`clip_core.hub.settings`); the
token is huggingface_hub's (``HF_TOKEN`` or ``hf auth login``). An unreachable hub fails within seconds.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

from clip_core.errors import ClipError, PretrainedError
from clip_core.hub.download import CONNECT_TIMEOUT, unreachable
from clip_core.hub.hfhub import HUB_PREFIX, is_commit, parse_hub_name
from clip_core.hub.settings import hub_endpoint, hub_offline

if TYPE_CHECKING:
    from clip_core.cards import ModelCard
    from clip_core.model import ClipModel

__all__ = ["PushFormat", "model_card_readme", "prepare_push", "push_to_hub"]

#: The layouts a model can be pushed in.
PushFormat = Literal["clip-sdk", "transformers", "open_clip", "onnx"]
_FORMATS: tuple[str, ...] = get_args(PushFormat)


def push_to_hub(
    model: ClipModel,
    repo_id: str,
    *,
    revision: str | None = None,
    private: bool | None = None,
    format: PushFormat = "clip-sdk",
    commit_message: str | None = None,
    token: str | None = None,
    timeout: float = CONNECT_TIMEOUT,
) -> str:
    """Upload ``model`` to the hub repository ``repo_id`` (``ORG/NAME``), created if it does not exist (``private``:
    None keeps the hub's default), on branch ``revision`` (created from ``main`` if new; default ``main``).

    The folder is :func:`prepare_push`'s. Returns the URL of the commit. :class:`PretrainedError` (a
    :class:`ClipError`) when ``HF_HUB_OFFLINE`` is set, the hub cannot be reached (within ``timeout`` seconds) or
    refuses the upload.
    """
    name = parse_hub_name(HUB_PREFIX + repo_id + (f"@{revision}" if revision else ""))
    endpoint = hub_endpoint()
    what = f"cannot push to {endpoint}/{repo_id}" + (f" (revision {revision!r})" if revision else "")
    _check_format(format)
    if name.revision is not None and is_commit(name.revision):
        raise PretrainedError(f"{what}: a push goes to a branch; {revision!r} is a commit")
    if hub_offline():
        raise PretrainedError(f"{what}: HF_HUB_OFFLINE is set")
    reason = unreachable(endpoint, timeout)
    if reason is not None:
        raise PretrainedError(f"{what}: {reason}")
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    from clip_core import __version__

    api = HfApi(endpoint=endpoint, token=token, library_name="clip-sdk", library_version=__version__)
    with tempfile.TemporaryDirectory(prefix="clip-push-") as staging:
        folder = prepare_push(model, Path(staging) / "repo", repo_id=repo_id, revision=revision, format=format)
        try:
            api.create_repo(repo_id, private=private, exist_ok=True)
            if name.revision is not None and name.revision != "main":
                api.create_branch(repo_id, branch=name.revision, exist_ok=True)
            commit = api.upload_folder(
                repo_id=repo_id,
                folder_path=folder,
                revision=name.revision,
                commit_message=commit_message or f"Upload {model.card.name} ({format} layout) with clip-sdk",
            )
        except HfHubHTTPError as exc:
            raise PretrainedError(f"{what}: {_first_line(exc)}") from None
        except Exception as exc:  # network errors after the probe
            raise PretrainedError(f"{what}: {type(exc).__name__}: {_first_line(exc)}") from None
    return str(commit.commit_url)


def prepare_push(
    model: ClipModel,
    directory: str | os.PathLike[str],
    *,
    repo_id: str,
    revision: str | None = None,
    format: PushFormat = "clip-sdk",
) -> Path:
    """Write what :func:`push_to_hub` uploads into ``directory`` (new or empty): the model in ``format``'s layout
    (``clip-sdk``: ``card.json`` + ``model.safetensors``; the others through :func:`clip_core.export.export_model`)
    and ``README.md`` (:func:`model_card_readme`). Returns the directory."""
    _check_format(format)
    target = Path(directory)
    if format == "clip-sdk":
        model.save_pretrained(target)
    else:
        try:
            from clip_core.export import export_model  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            raise ClipError(
                f"format {format!r} needs clip_core.export, which this clip-core does not have; push in format "
                "'clip-sdk', or upgrade clip-core"
            ) from None
        export_model(model, target, format=format)
    readme = model_card_readme(model.card, repo_id=repo_id, revision=revision, format=format)
    (target / "README.md").write_text(readme, encoding="utf-8")
    return target


def model_card_readme(
    card: ModelCard, *, repo_id: str, revision: str | None = None, format: PushFormat = "clip-sdk"
) -> str:
    """The hub model card of a repository holding ``card``'s model in ``format``: metadata, the card's table, the
    preprocessing, and how to load it with clip-sdk, open_clip and transformers."""
    from clip_core import __version__

    hub_name = HUB_PREFIX + repo_id + (f"@{revision}" if revision else "")
    tags = ["clip", "clip-sdk", "zero-shot-image-classification"] + (["open_clip"] if format == "open_clip" else [])
    lines = ["---", f"library_name: {_LIBRARY[format]}", "tags:"]
    lines += [f"- {tag}" for tag in tags]
    lines += ["pipeline_tag: zero-shot-image-classification", "---", ""]
    lines += [f"# {repo_id.split('/')[-1]}", ""]
    lines += [f"A CLIP model, card `{card.name}`, saved by clip-sdk {__version__} in the {_LAYOUT[format]}.", ""]
    if card.provenance.notes:
        lines += [card.provenance.notes, ""]
    lines += ["## Card", "", "| field | value |", "|---|---|", f"| embedding width | {card.embed_dim} |"]
    for label, tower in (("image tower", card.image), ("text tower", card.text)):
        settings = ", ".join(f"{key} {value}" for key, value in tower.model_dump(mode="json").items() if key != "kind")
        lines.append(f"| {label} | `{tower.kind}`: {settings} |")
    lines.append(f"| tokenizer | `{card.tokenizer.kind}`, context length {card.tokenizer.context_length} |")
    lines.append(f"| initial logit scale | {card.init_logit_scale:.6g} (log) |")
    if card.init_logit_bias is not None:
        lines.append(f"| initial logit bias | {card.init_logit_bias:.6g} |")
    lines += ["", "## Preprocessing", "", _preprocessing(card), ""]
    lines += ["## Use it", ""]
    if format == "onnx":
        lines += _onnx_use(repo_id, revision)
        return "\n".join(lines).rstrip() + "\n"
    lines += ["### clip-sdk", "", "```python", "import clip_core", ""]
    lines += [f'model = clip_core.create_model("{hub_name}")', "tokenizer = clip_core.get_tokenizer(model.card)"]
    lines += ["preprocess = clip_core.get_preprocess(model.card)", "```", ""]
    lines += [f"or on the command line: `clip embed --model {hub_name} --texts texts.txt -o texts.safetensors`.", ""]
    lines += ["### open_clip", ""]
    lines += _open_clip_use(repo_id, revision, hub_name, format)
    lines += ["### transformers", ""]
    lines += _transformers_use(card, repo_id, revision, hub_name, format)
    return "\n".join(lines).rstrip() + "\n"


_LIBRARY = {"clip-sdk": "clip-sdk", "open_clip": "open_clip", "transformers": "transformers", "onnx": "onnx"}
_LAYOUT = {
    "clip-sdk": "layout of clip-sdk (`card.json` + `model.safetensors`)",
    "open_clip": "layout of open_clip (`open_clip_config.json` + `open_clip_model.safetensors`)",
    "transformers": "layout of transformers' `CLIPModel` (`config.json` + `model.safetensors`, with the processor)",
    "onnx": "ONNX format (`image.onnx`, `text.onnx` and `card.json`)",
}


def _preprocessing(card: ModelCard) -> str:
    pre = card.preprocess
    size = pre.image_size
    steps = {
        "shortest": f"resize the shorter side to {size} pixels ({pre.interpolation}), center crop {size} x {size}",
        "longest": f"resize the longer side to {size} pixels ({pre.interpolation}), pad with {pre.fill_color} to "
        f"{size} x {size}",
        "squash": f"resize to {size} x {size} pixels ({pre.interpolation}), ignoring the aspect ratio",
    }[pre.resize_mode]
    mean = ", ".join(str(value) for value in pre.mean)
    std = ", ".join(str(value) for value in pre.std)
    return f"RGB; {steps}; scale to [0, 1]; subtract the mean ({mean}) and divide by the standard deviation ({std})."


def _open_clip_use(repo_id: str, revision: str | None, hub_name: str, format: str) -> list[str]:
    if format == "open_clip" and revision is None:
        return [
            "```python",
            "import open_clip",
            "",
            f'model, _, preprocess = open_clip.create_model_and_transforms("{hub_name}")',
            f'tokenizer = open_clip.get_tokenizer("{hub_name}")',
            "```",
            "",
        ]
    if format == "open_clip":
        return [
            "```python",
            "import open_clip",
            "from huggingface_hub import snapshot_download",
            "",
            f'folder = snapshot_download("{repo_id}", revision="{revision}")',
            'model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{folder}")',
            "```",
            "",
        ]
    return [
        "Write an open_clip folder with clip-sdk, then load it with open_clip alone:",
        "",
        "```console",
        f"clip convert {hub_name} model-open_clip --to open_clip",
        "```",
        "",
        "```python",
        "import open_clip",
        "",
        'model, _, preprocess = open_clip.create_model_and_transforms("local-dir:model-open_clip")',
        "```",
        "",
    ]


def _onnx_use(repo_id: str, revision: str | None) -> list[str]:
    pin = f', revision="{revision}"' if revision else ""
    return [
        "`image.onnx` maps preprocessed `pixels` (float32, `[batch, 3, S, S]`) to unit-length `image_embeds`;",
        "`text.onnx` maps token `ids` (int64, `[batch, L]`) to unit-length `text_embeds`. clip-sdk's tokenizer and",
        "preprocessing for them come from `card.json`:",
        "",
        "```python",
        "import clip_core",
        "import onnxruntime",
        "from huggingface_hub import snapshot_download",
        "",
        f'folder = snapshot_download("{repo_id}"{pin})',
        'card = clip_core.get_card(f"{folder}/card.json")',
        'ids = clip_core.get_tokenizer(card)(["a photo of a cat"]).numpy()',
        'text = onnxruntime.InferenceSession(f"{folder}/text.onnx")',
        'embeds = text.run(["text_embeds"], {"ids": ids})[0]',
        "```",
        "",
    ]


def _transformers_use(card: ModelCard, repo_id: str, revision: str | None, hub_name: str, format: str) -> list[str]:
    if card.image.kind != "vit":
        return [f"transformers has no CLIP with a `{card.image.kind}` image tower; use clip-sdk or open_clip.", ""]
    if format == "transformers":
        pin = f', revision="{revision}"' if revision else ""
        return [
            "```python",
            "from transformers import CLIPModel, CLIPProcessor",
            "",
            f'model = CLIPModel.from_pretrained("{repo_id}"{pin})',
            f'processor = CLIPProcessor.from_pretrained("{repo_id}"{pin})',
            "```",
            "",
        ]
    return [
        "Write a transformers folder with clip-sdk, then load it with transformers alone:",
        "",
        "```console",
        f"clip convert {hub_name} model-transformers --to transformers",
        "```",
        "",
        "```python",
        "from transformers import CLIPModel, CLIPProcessor",
        "",
        'model = CLIPModel.from_pretrained("model-transformers")',
        'processor = CLIPProcessor.from_pretrained("model-transformers")',
        "```",
        "",
    ]


def _check_format(format: str) -> None:
    if format not in _FORMATS:
        raise ClipError(f"format {format!r}: expected one of {', '.join(_FORMATS)}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
