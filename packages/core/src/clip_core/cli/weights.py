"""``clip pretrained``, ``clip convert`` and ``clip push``: published weights, checkpoint conversion, uploads."""

from __future__ import annotations

import argparse
import json
from typing import Any, get_args

from clip_core import registry
from clip_core.catalog import list_cards
from clip_core.cli.tables import print_table
from clip_core.errors import InputError
from clip_core.export.formats import EXPORT_FORMATS


def _cmd_pretrained_list(args: argparse.Namespace) -> None:
    from clip_core.hub.cache import cached_file

    cards = [registry.card_entry(args.card).name] if args.card else list_cards()
    entries = [registry.pretrained_weights(card, tag) for card in cards for tag in registry.pretrained_tags(card)]
    cached = [cached_file(weights) for weights in entries]
    if args.json:
        rows = [
            weights.model_dump() | {"source": weights.source, "cached": path is not None, "path": path and str(path)}
            for weights, path in zip(entries, cached, strict=True)
        ]
        print(json.dumps(rows, indent=2))
    elif entries:
        table = [
            [w.card, w.tag, w.source, w.dataset or "", w.activation or "", "yes" if path else "no"]
            for w, path in zip(entries, cached, strict=True)
        ]
        print_table(table, ["card", "tag", "source", "dataset", "activation", "cached"])
    else:
        where = f"card {cards[0]!r}" if args.card else "any card"
        print(f"no pretrained weights are registered for {where}")


def _cmd_convert(args: argparse.Namespace) -> None:
    from pathlib import Path

    from clip_core.cardfiles import CARD_SUFFIXES
    from clip_core.checkpoints import open_checkpoint
    from clip_core.checkpoints.statedict import STATE_DICT_SUFFIXES
    from clip_core.cli.models import model_from_args
    from clip_core.export import export_model

    source = Path(args.src)
    card_file = source.is_file() and source.suffix.lower() in CARD_SUFFIXES
    if source.is_dir() or (source.exists() and not card_file) or source.suffix in STATE_DICT_SUFFIXES:
        if args.pretrained is not None:
            raise InputError(f"--pretrained goes with a card; {args.src} is a checkpoint already")
        loaded = open_checkpoint(args.src, card=args.card)
        model, lines = loaded.model, loaded.describe()
    else:  # a card name or anything else --model accepts
        options = argparse.Namespace(
            model=args.src, pretrained=args.pretrained, card=args.card, device="cpu", dtype="fp32"
        )
        model, described, _ = model_from_args(options)
        lines = [f"read {described}", f"card {model.card.name!r}"]
    for line in lines:
        print(line)
    target = export_model(model, args.dst, format=args.to)
    files = sorted(path.name for path in target.iterdir())
    print(f"wrote {target} ({' + '.join(files)})")


def _add_convert_parser(commands: Any) -> None:
    convert = commands.add_parser(
        "convert",
        help="convert a checkpoint or model to this SDK's, transformers', open_clip's or ONNX format",
        description="Read SRC (this SDK's folder, an OpenAI TorchScript archive, an OpenAI / open_clip state dict "
        "(.pt, .pth, .bin, .ckpt, .safetensors), a transformers CLIPModel folder, or a card name or file with "
        "--pretrained, as --model takes it) without running code in it, and write DST atomically in the format --to "
        "names: clip-sdk (card.json + model.safetensors, the default), transformers (config.json, model.safetensors, "
        "preprocessor and tokenizer files: ViT cards only), open_clip (open_clip_config.json + "
        "open_clip_model.safetensors, for open_clip's local-dir:DST) or onnx (image.onnx, text.onnx, card.json; needs "
        "clip-core[onnx]). Without --card the card is read from the checkpoint (card.json, transformers' "
        "config.json) or inferred from the weights' shapes, and a registered card with the same architecture is "
        "used when there is one. Weights cannot tell GELU from QuickGELU: TorchScript archives are taken to be "
        "OpenAI's (quick_gelu), other state dicts open_clip's default (gelu); the card and the activation assumed "
        "are printed, and --card overrides them.",
    )
    convert.add_argument("src", metavar="SRC", help="the checkpoint to read (file or folder), or a card")
    convert.add_argument(
        "dst", metavar="DST", help="the folder to write (new, empty, or an earlier export in the same format)"
    )
    convert.add_argument(
        "--to", choices=EXPORT_FORMATS, default="clip-sdk", metavar="FORMAT", help=f"{', '.join(EXPORT_FORMATS)}"
    )
    convert.add_argument("--card", metavar="NAME|FILE", help="the card of SRC (default: read or inferred)")
    convert.add_argument("--pretrained", metavar="TAG_OR_PATH", help="weights for a card SRC: a tag or a file")
    convert.set_defaults(run=_cmd_convert)


def _cmd_push(args: argparse.Namespace) -> None:
    from clip_core.checkpoints import open_checkpoint
    from clip_core.hub.push import prepare_push, push_to_hub

    loaded = open_checkpoint(args.src, args.card)
    for line in loaded.describe():
        print(line)
    if args.prepare is not None:
        folder = prepare_push(
            loaded.model, args.prepare, repo_id=args.repo_id, revision=args.revision, format=args.format
        )
        print(f"wrote {folder} ({', '.join(sorted(path.name for path in folder.iterdir()))}); nothing was uploaded")
        return
    url = push_to_hub(loaded.model, args.repo_id, revision=args.revision, private=args.private, format=args.format)
    print(f"pushed to {url}")


def _add_push_parser(commands: Any) -> None:
    from clip_core.hub.push import PushFormat

    push = commands.add_parser(
        "push",
        help="upload a model to the Hugging Face hub, with a model card",
        description="Load SRC (anything --model names as a checkpoint: a folder, a weights file, hf-hub:ORG/NAME) "
        "and upload it to the hub repository REPO_ID (created if new) in the layout --format names, with a "
        "README.md model card (the card, the preprocessing, how to load it with clip-sdk, open_clip and "
        "transformers). The token is huggingface_hub's (HF_TOKEN or `hf auth login`), the hub HF_ENDPOINT's.",
    )
    push.add_argument("src", metavar="SRC", help="the model to upload (a checkpoint or hf-hub:ORG/NAME)")
    push.add_argument("repo_id", metavar="REPO_ID", help="the hub repository, ORG/NAME")
    push.add_argument("--card", metavar="NAME|FILE", help="the card of SRC (default: read or inferred)")
    push.add_argument("--format", choices=get_args(PushFormat), default="clip-sdk", help="the layout (clip-sdk)")
    push.add_argument("--revision", metavar="BRANCH", help="the branch to commit to (main; created if new)")
    visibility = push.add_mutually_exclusive_group()
    visibility.add_argument("--private", action="store_true", default=None, help="create the repository private")
    visibility.add_argument("--public", dest="private", action="store_false", help="create the repository public")
    push.add_argument("--prepare", metavar="DIR", help="only write the folder that would be uploaded to DIR")
    push.set_defaults(run=_cmd_push)


def add_parsers(commands: Any) -> None:
    """``clip pretrained list``, ``clip convert`` and ``clip push``."""
    pretrained = commands.add_parser("pretrained", help="registered pretrained weights, by card and tag")
    pretrained_commands = pretrained.add_subparsers(dest="pretrained_command", required=True, metavar="SUBCOMMAND")
    weights = pretrained_commands.add_parser(
        "list", help="card, tag, source, data set, activation and whether the file is in the cache"
    )
    weights.add_argument("card", nargs="?", help="only this card (name or alias)")
    weights.add_argument("--json", action="store_true", help="print JSON (every field of each entry)")
    weights.set_defaults(run=_cmd_pretrained_list)
    _add_convert_parser(commands)
    _add_push_parser(commands)
