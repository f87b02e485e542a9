"""``--model``: the model the inference commands run, from a card name, a pretrained tag or a checkpoint."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from clip_core.errors import InputError
from clip_core.model import ClipModel


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--model``, ``--card``, ``--pretrained``, ``--device``, ``--dtype`` and ``--image-size`` to ``parser``.

    The options naming a model, shared by every inference command (see :func:`model_from_args`).
    """
    group = parser.add_argument_group("model")
    group.add_argument(
        "--model",
        required=True,
        metavar="M",
        help="a card name or file (random weights, seed 0: for tests), a card with --pretrained, a checkpoint "
        "(this SDK's, open_clip's or transformers' folder, or a .safetensors/.pt/.bin file), or a Hugging Face hub "
        "repository holding one of those folders (hf-hub:ORG/NAME[@REVISION])",
    )
    group.add_argument("--pretrained", metavar="TAG_OR_PATH", help="weights for the card: a pretrained tag or a file")
    group.add_argument("--card", help="the card of a checkpoint (when it does not say)")
    group.add_argument("--device", help="cpu, cuda, cuda:1... (default: the GPU if any)")
    group.add_argument(
        "--dtype",
        choices=["fp32", "bf16"],
        default="fp32",
        help="bf16: convert the towers (LayerNorm, logit scale and logits stay fp32; fp32)",
    )
    group.add_argument(
        "--image-size",
        type=int,
        metavar="PIXELS",
        help="run the model on PIXELS-sided images: the card's image size changed and the weights' position "
        "embedding resampled to the new grid (as open_clip's force_image_size)",
    )


def model_from_args(args: argparse.Namespace) -> tuple[ClipModel, str, str]:
    """The model ``--model`` (``--pretrained``, ``--card``) names, in eval mode on ``--device`` in ``--dtype``.

    Returns the model, a description of where it came from, and its weight fingerprint (taken before any dtype
    conversion). A card without ``--pretrained`` gets random weights from seed 0, the same in every run, and a
    warning on stderr saying so and how to get trained weights (:func:`warn_random_weights`).
    """
    import torch

    from clip_core.cardfiles import CARD_SUFFIXES
    from clip_core.checkpoints import load_checkpoint
    from clip_core.checkpoints.statedict import STATE_DICT_SUFFIXES
    from clip_core.checkpoints.strict import model_from_state
    from clip_core.create import create_model
    from clip_core.fingerprint import model_fingerprint
    from clip_core.hub.hfhub import is_hub_name

    spec = args.model
    path = Path(spec)
    if is_hub_name(spec):
        if args.pretrained is not None:
            raise InputError(f"--pretrained goes with a card; --model {spec} brings its own weights")
        model = load_checkpoint(spec, card=args.card)
        source = spec if args.card is None else f"{spec} (card {args.card})"
    elif path.is_dir() or (path.is_file() and path.suffix.lower() not in CARD_SUFFIXES):
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
            warn_random_weights(model.card.name)
        else:
            model = create_model(spec, pretrained=args.pretrained)
            source = f"{spec} + {args.pretrained}"
    if getattr(args, "image_size", None) is not None:
        resized = model.card.with_image_size(args.image_size)
        if resized is not model.card:
            model = model_from_state(resized, model.state_dict(), source)
            source = f"{source} at {args.image_size}x{args.image_size} (card {resized.name})"
    model.eval()
    fingerprint = model_fingerprint(model)
    try:
        gpu = f"cuda:{os.environ.get('LOCAL_RANK', '0')}"  # under torchrun: this process's GPU
        device = torch.device(args.device or (gpu if torch.cuda.is_available() else "cpu"))
        model.to(device)
    except (RuntimeError, AssertionError) as exc:
        raise InputError(f"--device {args.device}: {str(exc).splitlines()[0]}") from None
    if args.dtype == "bf16":
        model.to_bf16()
    return model, source, fingerprint


def warn_random_weights(card: str) -> None:
    """Say on stderr that ``card`` runs with random weights, and how to get trained ones: its outputs mean nothing."""
    print(
        f"clip: warning: {card} has random weights (seed 0), so its outputs mean nothing; load trained weights "
        f"with --pretrained TAG (the tags: clip pretrained list {card})",
        file=sys.stderr,
    )
