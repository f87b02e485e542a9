"""``clip eval``: zero-shot classification, retrieval or a linear probe on a local data set."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from clip_core.cli.models import add_model_arguments, model_from_args


def _cmd_eval(args: argparse.Namespace) -> None:
    from clip_core.eval import ProbeSettings, evaluate
    from clip_core.eval.plots import write_plots

    model, source, fingerprint = model_from_args(args)
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    result = evaluate(
        model,
        args.data,
        args.task,
        split=args.split,
        train=args.train_split,
        val=args.val_split,
        classnames=args.classnames,
        templates=args.templates,
        recall_k=args.recall_k,
        batch_size=args.batch_size,
        workers=args.workers,
        probe=ProbeSettings(lr=args.probe_lr, epochs=args.probe_epochs, batch_size=args.batch_size, seed=args.seed),
        pretrained=source,
        fingerprint=fingerprint,
        progress=progress,
    )
    print(result.table())
    for skipped in result.skipped:
        print(f"  skipped {skipped.source}: {skipped.error}")
    if args.output:
        print(f"results: {result.write_json(args.output)}")
    if args.plots:
        for path in write_plots(result, args.plots):
            print(f"plot: {path}")


def add_parsers(commands: Any) -> None:
    """``clip eval``."""
    parser = commands.add_parser(
        "eval",
        help="evaluate a model on a local data set: zero-shot classification, retrieval or a linear probe",
        description="Evaluate a model on a local data set with CLIP_benchmark's metrics: zero-shot classification "
        "(acc1, acc5, mean_per_class_recall), zero-shot retrieval (image_retrieval_recall@k, "
        "text_retrieval_recall@k) or a linear probe (lp_acc1, lp_acc5, lp_mean_per_class_recall). DATA is a folder "
        "in CLIP_benchmark's wds layout (SPLIT/nshards.txt, SPLIT/0.tar..., classnames.txt, "
        "zeroshot_classification_templates.txt, dataset_type.txt), an image folder with one sub-folder per class, "
        "or a retrieval list (.csv with image and caption columns, or .jsonl of {image, captions}). Nothing is "
        "downloaded.",
    )
    add_model_arguments(parser)
    parser.add_argument("--data", required=True, metavar="PATH", help="the data set (folder, .csv or .jsonl)")
    parser.add_argument(
        "--task",
        choices=["zeroshot_classification", "zeroshot_retrieval", "linear_probe"],
        help="what to evaluate (default: zero-shot classification or retrieval, as the data set holds)",
    )
    parser.add_argument("--split", default="test", help="the split evaluated (test)")
    parser.add_argument("--train-split", dest="train_split", default="train", help="linear probe: training split")
    parser.add_argument(
        "--val-split", dest="val_split", help="linear probe: a validation split to choose the weight decay on"
    )
    parser.add_argument("--batch-size", dest="batch_size", type=int, default=64, help="images per batch (64)")
    parser.add_argument("--workers", type=int, default=2, help="image-decoding worker processes (2; 0: in-process)")
    parser.add_argument("--templates", metavar="FILE", help="prompt templates, one per line ({c} for the class)")
    parser.add_argument("--classnames", metavar="FILE", help="class names, one per line (in class-index order)")
    parser.add_argument(
        "--recall-k", dest="recall_k", type=int, nargs="+", default=[1, 5, 10], metavar="K", help="retrieval: k's"
    )
    parser.add_argument("--probe-lr", dest="probe_lr", type=float, default=0.1, help="linear probe: AdamW lr (0.1)")
    parser.add_argument("--probe-epochs", dest="probe_epochs", type=int, default=10, help="linear probe: epochs (10)")
    parser.add_argument("--seed", type=int, default=0, help="linear probe: random seed (0)")
    parser.add_argument("--output", "-o", metavar="FILE", help="write the results as JSON (CLIP_benchmark's shape)")
    parser.add_argument("--plots", metavar="DIR", help="write a confusion matrix or recall@k curve PNG into DIR")
    parser.add_argument("--no-progress", dest="progress", action="store_false", default=None, help="no progress bar")
    parser.set_defaults(run=_cmd_eval)
