"""``clip plugins`` and ``clip cards``: what the installed plugins register."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from clip_core import registry
from clip_core.cards import ModelCard, card_json_schema
from clip_core.catalog import get_card, list_cards
from clip_core.cli.tables import print_table


def _cmd_plugins(args: argparse.Namespace) -> None:
    infos = registry.plugins()
    if args.json:
        print(json.dumps([dataclasses.asdict(info) for info in infos], indent=2))
        return
    if not infos:
        print("no plugins installed (pip install clip-encoders-vit clip-encoders-text, for example)")
        return
    for info in infos:
        source = f"{info.distribution} {info.version}" if info.distribution else "registered at run time"
        if info.error is not None:
            print(f"{info.name}  ({source}) BROKEN, left out: {info.error}")
            continue
        print(f"{info.name}  ({source}, plugin API {info.api_version})")
        for label in ("towers", "tokenizers", "cards", "pretrained", "losses"):
            items = getattr(info, label)
            if items:
                print(f"  {label}: {', '.join(items)}")


def _cmd_cards_list(args: argparse.Namespace) -> None:
    rows = []
    for name in list_cards():
        entry = registry.card_entry(name)
        data = entry.data.model_dump() if isinstance(entry.data, ModelCard) else entry.data
        image, text = data.get("image", {}), data.get("text", {})
        rows.append(
            [
                name,
                str(data.get("embed_dim", "?")),
                str(image.get("kind", "?")),
                str(text.get("kind", "?")),
                ", ".join(entry.aliases),
                entry.plugin,
            ]
        )
    if args.json:
        keys = ["name", "embed_dim", "image", "text", "aliases", "plugin"]
        print(json.dumps([dict(zip(keys, row, strict=True)) for row in rows], indent=2))
    elif rows:
        print_table(rows, ["card", "embed_dim", "image", "text", "aliases", "plugin"])
    else:
        print("no cards registered (install clip-encoders-vit or clip-encoders-resnet, or pass a card file)")


def _cmd_cards_show(args: argparse.Namespace) -> None:
    from clip_core.sizing import estimate_size

    card = get_card(args.card)
    print(card.model_dump_json(indent=2))
    if args.json:
        return
    size = estimate_size(card, flops=True)
    if size is None:
        print("size: unknown (a tower cannot be built on the meta device)")
        return
    print(f"size: {size.describe()}")
    for what, gflops, unit in (
        ("image", size.image_gflops, f"{card.preprocess.image_size}x{card.preprocess.image_size} pixels"),
        ("text", size.text_gflops, f"{card.tokenizer.context_length} tokens"),
    ):
        figure = "unknown" if gflops is None else f"{gflops:,.2f} ({gflops / 2:,.2f} G multiply-adds)"
        print(f"GFLOPs per {what} ({unit}): {figure}")


def _cmd_cards_schema(args: argparse.Namespace) -> None:
    print(json.dumps(card_json_schema(), indent=2))


def _cmd_cards_validate(args: argparse.Namespace) -> None:
    for path in args.files:
        card = get_card(Path(path))
        print(f"{path}: ok (card {card.name!r}, embed_dim {card.embed_dim}, {card.image.kind} + {card.text.kind})")


def add_parsers(commands: Any) -> None:
    """``clip plugins`` and ``clip cards list|show|schema|validate``."""
    plugins = commands.add_parser("plugins", help="installed plugins, their versions and what each registers")
    plugins.add_argument("--json", action="store_true", help="print JSON")
    plugins.set_defaults(run=_cmd_plugins)

    cards = commands.add_parser("cards", help="list, show, validate model cards, or print their JSON Schema")
    card_commands = cards.add_subparsers(dest="cards_command", required=True, metavar="SUBCOMMAND")
    listing = card_commands.add_parser("list", help="registered cards")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(run=_cmd_cards_list)
    show = card_commands.add_parser(
        "show", help="a card as JSON (by name, alias or file), with its parameter count and GFLOPs per image and text"
    )
    show.add_argument("card", help="card name, alias or file")
    show.add_argument("--json", action="store_true", help="print the card only (a valid card file)")
    show.set_defaults(run=_cmd_cards_show)
    schema = card_commands.add_parser("schema", help="JSON Schema of card files, with every installed tower kind")
    schema.set_defaults(run=_cmd_cards_schema)
    validate = card_commands.add_parser("validate", help="check card files (JSON, YAML or TOML)")
    validate.add_argument("files", nargs="+", metavar="FILE")
    validate.set_defaults(run=_cmd_cards_validate)
