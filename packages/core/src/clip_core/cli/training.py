"""``clip train`` and ``clip demo``."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from clip_core.cards import format_validation_error
from clip_core.errors import InputError


def _cmd_train(args: argparse.Namespace) -> None:
    from clip_core.training import TrainConfig, train

    given = {
        key: value
        for key, value in vars(args).items()
        if key in TrainConfig.model_fields and value is not None and key != "loss_options"
    }
    given["loss_options"] = _key_values(args.loss_option or [])
    try:
        config = TrainConfig.model_validate(given)
    except ValidationError as exc:
        raise InputError(f"invalid training options: {format_validation_error(exc)}") from None
    result = train(config)
    if result.model_dir is not None:  # the first process
        last = result.history[-1] if result.history else None
        loss = f", last loss {last.loss:.4f}" if last else ""
        print(f"trained {result.steps} updates in {result.seconds:.1f} s{loss}; model: {result.model_dir}")
        if result.evaluations:
            step, metrics = max(result.evaluations.items())
            shown = ", ".join(f"{name} {value:.4f}" for name, value in metrics.items())
            print(f"evaluation after update {step}: {shown}")
        if result.world_size > 1:
            print(f"the {result.world_size} processes ended with identical weights (checked)")


def _key_values(items: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; each value read as JSON when it is JSON (``0.1``, ``true``, ``"ring"``), else a string."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"--loss-option takes KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def _cmd_demo(args: argparse.Namespace) -> None:
    from clip_core.demo import run_demo

    run_demo(out=args.out, seed=args.seed, steps=args.steps, quick=args.quick, verify=args.verify, threads=args.threads)


def _add_train_parser(commands: Any) -> None:
    train = commands.add_parser(
        "train",
        help="train a card contrastively on image-caption pairs (torchrun for several processes)",
        description="Train a card contrastively on image-caption pairs: a .csv or .jsonl file of image paths and "
        "captions, a folder of images with same-named .txt captions, or img2dataset's webdataset shards "
        "('shards/{00000..00099}.tar', or a .txt list of shards). Run it under `torchrun --nproc-per-node N` "
        "for data-parallel training (gloo on CPU, NCCL on GPUs). Each logged update is a line of OUT/log.jsonl.",
    )
    train.add_argument("card", help="card name, alias or file")
    train.add_argument(
        "data", help="a .csv or .jsonl file, a folder of images with .txt captions, or shards ('{00000..00099}.tar')"
    )
    train.add_argument(
        "--train-num-samples", dest="train_num_samples", type=int, help="samples per epoch of shards (counted)"
    )
    train.add_argument("--out", help="output folder (default: clip-train)")
    train.add_argument("--pretrained", help="start from these weights (a checkpoint path or a pretrained tag)")
    train.add_argument("--image-column", dest="image_column", help="CSV column / JSON key of image paths (image)")
    train.add_argument("--caption-column", dest="caption_column", help="CSV column / JSON key of captions (caption)")
    length = train.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, help="number of updates")
    length.add_argument("--epochs", type=float, help="passes over the data (default: 1)")
    train.add_argument("--batch-size", dest="batch_size", type=int, help="global batch per update (64)")
    train.add_argument("--accum-steps", dest="accum_steps", type=int, help="micro-batches per update (1)")
    train.add_argument("--lr", type=float, help="peak learning rate (5e-4)")
    train.add_argument("--min-lr", dest="min_lr", type=float, help="final learning rate of the cosine (0)")
    train.add_argument("--warmup-steps", dest="warmup_steps", type=int, help="updates of linear warm-up (100)")
    train.add_argument("--weight-decay", dest="weight_decay", type=float, help="AdamW weight decay on weights (0.2)")
    train.add_argument("--grad-clip-norm", dest="grad_clip_norm", type=float, help="clip the gradient norm")
    train.add_argument("--loss", help="registered loss name (clip)")
    train.add_argument("--loss-option", action="append", metavar="KEY=VALUE", help="loss keyword argument (repeatable)")
    train.add_argument("--precision", choices=["fp32", "bf16"], help="bf16: bfloat16 autocast (fp32)")
    train.add_argument(
        "--grad-checkpointing", dest="grad_checkpointing", action="store_true", default=None, help="save memory"
    )
    train.add_argument("--freeze", choices=["image", "text"], help="freeze one tower (LiT-style)")
    train.add_argument("--save-every", dest="save_every", type=int, help="checkpoint every N updates")
    train.add_argument("--keep-checkpoints", dest="keep_checkpoints", type=int, help="checkpoints kept (2)")
    train.add_argument("--resume", help="a checkpoint folder, or 'latest' in --out")
    train.add_argument("--seed", type=int, help="seed of initialisation and data order (0)")
    train.add_argument("--workers", type=int, help="data-loading worker processes (0)")
    train.add_argument("--device", help="cpu, cuda, cuda:1... (default: the local GPU if any)")
    train.add_argument("--no-progress", dest="progress", action="store_false", default=None, help="no progress bar")
    train.add_argument("--log-every", dest="log_every", type=int, help="updates between lines of OUT/log.jsonl (10)")
    train.add_argument(
        "--tensorboard", action="store_true", default=None, help="also log to OUT/tensorboard (clip-core[tensorboard])"
    )
    train.add_argument(
        "--eval-data",
        dest="eval_data",
        metavar="PATH",
        help="evaluate during training on this data set (what clip eval --data reads); metrics go into OUT/log.jsonl",
    )
    train.add_argument(
        "--eval-every",
        dest="eval_every",
        type=int,
        metavar="N",
        help="updates between evaluations (default: at each epoch's end); always after the last update too",
    )
    train.add_argument(
        "--eval-task",
        dest="eval_task",
        choices=["zeroshot_classification", "zeroshot_retrieval", "linear_probe"],
        help="what to evaluate (default: zero-shot classification or retrieval, as the data set holds)",
    )
    train.set_defaults(run=_cmd_train)


def _add_demo_parser(commands: Any) -> None:
    demo = commands.add_parser(
        "demo",
        help="train a tiny CLIP from scratch on generated shapes and report zero-shot accuracy",
        description="Generate coloured shapes with captions, train a tiny ViT + text-transformer card from "
        "scratch, report zero-shot accuracy and text-to-image recall on held-out images (and on colour-shape "
        "combinations never seen in training), save the model and draw the loss curve and a similarity matrix.",
    )
    demo.add_argument("--out", default="clip-demo", help="output folder (default: ./clip-demo)")
    demo.add_argument("--seed", type=int, default=0, help="seed of the data, the initialisation and the order")
    demo.add_argument("--steps", type=int, default=None, help="training updates (default: the demo's schedule)")
    demo.add_argument("--quick", action="store_true", help="a few updates on a small data set (a smoke test)")
    demo.add_argument("--verify", action="store_true", help="reload the saved model and check its accuracy")
    demo.add_argument("--threads", type=int, default=1, help="torch threads (default 1: fastest for this model)")
    demo.set_defaults(run=_cmd_demo)


def add_parsers(commands: Any) -> None:
    """``clip train`` and ``clip demo``."""
    _add_train_parser(commands)
    _add_demo_parser(commands)
