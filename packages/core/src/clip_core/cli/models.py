"""``--model``: the model the inference commands run, from a card name, a pretrained tag or a checkpoint."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from clip_core.errors import InputError
from clip_core.model import ClipModel


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--model``, ``--card``, ``--pretrained``, ``--device`` and ``--dtype`` to ``parser``."""
    """The options naming a model, shared by ``embed``, ``zero-shot`` and ``search`` (see :func:`_model_from_args`)."""
    group = parser.add_argument_group("model")
    group.add_argument(
        "--model",
        required=True,
        metavar="M",
        help="a card name or file (random weights, seed 0: for tests), a card with --pretrained, or a checkpoint "
        "(this SDK's folder, or a .safetensors/.pt/.bin file)",
    )
    group.add_argument("--pretrained", metavar="TAG_OR_PATH", help="weights for the card: a pretrained tag or a file")
    group.add_argument("--card", help="the card of a checkpoint file (when the file does not say)")
    group.add_argument("--device", help="cpu, cuda, cuda:1... (default: the GPU if any)")
    group.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32", help="bf16: convert the model (fp32)")


def model_from_args(args: argparse.Namespace) -> tuple[ClipModel, str, str]:
    """The model ``--model`` (``--pretrained``, ``--card``) names, in eval mode on ``--device`` in ``--dtype``.

    Returns the model, a description of where it came from, and its weight fingerprint (taken before any dtype
    conversion). A card without ``--pretrained`` gets random weights from seed 0, the same in every run.
    """
    import torch

    from clip_core.cardfiles import CARD_SUFFIXES
    from clip_core.checkpoints import load_checkpoint
    from clip_core.checkpoints.statedict import STATE_DICT_SUFFIXES
    from clip_core.create import create_model
    from clip_core.fingerprint import model_fingerprint

    spec = args.model
    path = Path(spec)
    if path.is_dir() or (path.is_file() and path.suffix.lower() not in CARD_SUFFIXES):
        if args.pretrained is not None:
            raise InputError(f"--pretrained goes with a card; --model {spec} is a checkpoint already")
        model = load_checkpoint(path, card=args.card)
        source = spec if args.card is None else f"{spec} (card {args.card})"
    elif path.suffix.lower() in STATE_DICT_SUFFIXES:
        raise InputError(f"{spec}: no such checkpoint file")
    else:
        if args.card is not None:
            raise InputError(f"--card goes with a checkpoint file; --model {spec} is a card")
        if args.pretrained is None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                model = create_model(spec)
            source = f"{spec} (random weights, seed 0)"
        else:
            model = create_model(spec, pretrained=args.pretrained)
            source = f"{spec} + {args.pretrained}"
    model.eval()
    fingerprint = model_fingerprint(model)
    try:
        gpu = f"cuda:{os.environ.get('LOCAL_RANK', '0')}"  # under torchrun: this process's GPU
        device = torch.device(args.device or (gpu if torch.cuda.is_available() else "cpu"))
        model.to(device)
    except (RuntimeError, AssertionError) as exc:
        raise InputError(f"--device {args.device}: {str(exc).splitlines()[0]}") from None
    if args.dtype == "bf16":
        model.to(torch.bfloat16)
    return model, source, fingerprint
