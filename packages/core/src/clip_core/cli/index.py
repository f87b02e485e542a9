"""``clip index build`` and ``clip index info``: FAISS indices of embeddings files, for ``clip search --index``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from clip_core.cli.tables import print_table


def _cmd_build(args: argparse.Namespace) -> None:
    from clip_core.index import build_index

    index = build_index(
        args.embeddings,
        args.out,
        kind=args.kind,
        memory_budget=args.memory_budget,
        target_recall=args.target_recall,
        progress=args.progress,
    )
    _describe(index.meta, str(index.path))


def _cmd_info(args: argparse.Namespace) -> None:
    from clip_core.index import open_index

    index = open_index(args.index)
    if args.json:
        print(json.dumps(index.meta, indent=2))
        return
    _describe(index.meta, str(index.path))


def _describe(meta: dict[str, Any], path: str) -> None:
    params = ", ".join(f"{name}={value}" for name, value in meta["params"].items()) or "exact"
    rows = [
        ["kind", f"{meta['kind']} ({meta['factory']})"],
        ["rows", f"{meta['rows']:,} x {meta['dim']}"],
        ["embeddings", str(meta["embeddings"]["path"])],
        ["search", params],
        ["recall@10", f"{meta['recall_at_10']:.4f} of exact search (sampled rows, at build)"],
        ["built in", f"{meta['build_seconds']} s"],
    ]
    print_table(rows, ["index", path])


def add_parsers(commands: Any) -> None:
    """``clip index build`` and ``clip index info``."""
    from clip_core.index.build import DEFAULT_MEMORY_BUDGET
    from clip_core.index.store import KINDS

    index = commands.add_parser(
        "index",
        help="build FAISS indices of embeddings files for fast search (clip-core[faiss])",
        description="FAISS indices of embeddings files written by `clip embed`, searched by `clip search --index`.",
    )
    actions = index.add_subparsers(dest="action", required=True, metavar="ACTION")
    build = actions.add_parser(
        "build",
        help="index an embeddings file",
        description="Index the rows of EMBEDDINGS for cosine search. --kind auto picks by size and memory budget: "
        "exact (flat) for small files, an HNSW graph when it fits the budget, IVF-PQ codes re-ranked exactly "
        "beyond; approximate kinds are tuned on sampled rows to reach --target-recall of the exact top 10.",
    )
    build.add_argument("embeddings", metavar="EMBEDDINGS", help="a .safetensors or .npy file from clip embed")
    build.add_argument("--out", "-o", help="the index folder (EMBEDDINGS.faiss beside the file)")
    build.add_argument("--kind", choices=["auto", *KINDS], default="auto", help="the kind of index (auto)")
    build.add_argument(
        "--memory-budget",
        dest="memory_budget",
        default=DEFAULT_MEMORY_BUDGET,
        help=f"memory the index may take, e.g. 4GB, 512MiB ({DEFAULT_MEMORY_BUDGET})",
    )
    build.add_argument(
        "--target-recall", dest="target_recall", type=float, default=0.97, help="recall@10 to tune for (0.97)"
    )
    build.add_argument("--no-progress", dest="progress", action="store_false", default=None, help="no progress bar")
    build.set_defaults(run=_cmd_build)
    info = actions.add_parser("info", help="what an index holds and how it was built")
    info.add_argument("index", metavar="INDEX", help="an index folder")
    info.add_argument("--json", action="store_true", help="print index.json")
    info.set_defaults(run=_cmd_info)
