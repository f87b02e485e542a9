"""``clip embed``, ``clip zero-shot`` and ``clip search``: the everyday inference jobs."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clip_core.cli.models import add_model_arguments, model_from_args
from clip_core.cli.tables import print_table
from clip_core.errors import InputError

if TYPE_CHECKING:
    from clip_core.embedding.file import Embeddings
    from clip_core.index import Searchable


def _cmd_embed(args: argparse.Namespace) -> None:
    from clip_core.embedding import embed_images, embed_texts, read_texts
    from clip_core.embedding.file import output_format
    from clip_core.embedding.sources import find_images

    if bool(args.sources) == bool(args.texts):
        raise InputError("name images (files, folders, globs, list files) or --texts FILE, not both or neither")
    output_format(args.out)
    texts = read_texts(args.texts) if args.texts else []
    sources = find_images(args.sources) if args.sources else []
    model, source, fingerprint = model_from_args(args)
    options: dict[str, Any] = {
        "batch_size": args.batch_size,
        "normalize": args.normalize,
        "shard_size": args.shard_size,
        "overwrite": args.overwrite,
        "progress": args.progress,
        "model_source": source,
        "fingerprint": fingerprint,
    }
    if texts:
        result = embed_texts(model, texts, args.out, long_text=args.long_text, **options)
    else:
        result = embed_images(model, sources, args.out, workers=args.workers, **options)
    unit = "texts" if texts else "images"
    resumed = f"; {result.resumed} done by an earlier run" if result.resumed else ""
    print(
        f"embedded {result.rows} {unit} into {result.output} [{result.rows} x {result.embed_dim}] "
        f"in {result.seconds:.1f} s{resumed}; index {result.index}, manifest {result.manifest}"
    )
    if result.skipped:
        print(f"skipped {len(result.skipped)} unreadable {unit}:")
        for item in result.skipped:
            print(f"  {item.source}: {item.error}")


def _cmd_zero_shot(args: argparse.Namespace) -> None:
    from clip_core.embedding.sources import find_images, load_batch, read_texts
    from clip_core.preprocess import get_preprocess
    from clip_core.templates import get_templates
    from clip_core.tokenizer import get_tokenizer
    from clip_core.zeroshot import zero_shot_classifier, zero_shot_predict

    given, sources = _labels_and_images(args.labels or [], args.images)
    labels = [*given, *(read_texts(args.labels_file) if args.labels_file else [])]
    if not labels:
        raise InputError("name the labels: --labels cat dog ... or --labels-file FILE")
    if not sources:
        raise InputError("name the images to classify (after --labels, end the labels with --)")
    if args.top_k < 1:
        raise InputError(f"--top-k must be at least 1, got {args.top_k}")
    templates = args.template or get_templates(args.templates)
    images = find_images(sources)
    model, _, _ = model_from_args(args)
    classifier = zero_shot_classifier(model, get_tokenizer(model.card), labels, templates)
    preprocess = get_preprocess(model.card)
    results: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    for start in range(0, len(images), args.batch_size):
        good, pixels, failures = load_batch(images[start : start + args.batch_size], preprocess)
        skipped += [{"source": path, "error": error} for path, error in failures]
        if pixels is None:
            continue
        probabilities = zero_shot_predict(model, pixels, classifier, activation=args.activation)
        probabilities, picks = probabilities.topk(min(args.top_k, len(labels)), dim=-1)
        for path, values, indices in zip(good, probabilities.tolist(), picks.tolist(), strict=True):
            predictions = [{"label": labels[i], "probability": p} for p, i in zip(values, indices, strict=True)]
            results.append({"image": path, "predictions": predictions})
    if not results:
        first = skipped[0]
        raise InputError(
            f"none of the {len(skipped)} images could be read (the first: {first['source']}: {first['error']})"
        )
    if args.json:
        print(json.dumps({"results": results, "skipped": skipped}, indent=2, ensure_ascii=False))
    else:
        rows = [
            [result["image"], str(rank), item["label"], f"{item['probability']:.4f}"]
            for result in results
            for rank, item in enumerate(result["predictions"], 1)
        ]
        print_table(rows, ["image", "rank", "label", "probability"])
    for item in skipped:
        print(f"clip: skipped {item['source']}: {item['error']}", file=sys.stderr)


def _labels_and_images(labels: list[str], images: list[str]) -> tuple[list[str], list[str]]:
    """``--labels cat dog photos/`` leaves no images: the trailing labels naming files, folders or globs are images."""
    if images or not labels:
        return labels, images
    split = len(labels)
    while split > 1 and _names_images(labels[split - 1]):
        split -= 1
    return labels[:split], labels[split:]


def _names_images(text: str) -> bool:
    import glob

    return Path(text).exists() or bool(set("*?[") & set(text) and glob.glob(text, recursive=True))


def _cmd_search(args: argparse.Namespace) -> None:
    from clip_core.embedding.file import read_embeddings
    from clip_core.embedding.sources import read_image
    from clip_core.index import check_made_by, open_index, search_by_image, search_by_text

    if not (args.text or args.image):
        raise InputError('give a query: --text "a red car" or --image query.jpg')
    if args.top_k < 1:
        raise InputError(f"--top-k must be at least 1, got {args.top_k}")
    target: Embeddings | Searchable
    if args.index:
        index = open_index(args.index)
        if index.embeddings != Path(args.embeddings).resolve():
            raise InputError(f"{args.index} indexes {index.embeddings}, not {args.embeddings}")
        target, width, manifest = index, index.dim, index.manifest
    else:
        embeddings = read_embeddings(args.embeddings)
        target, width, manifest = embeddings, embeddings.vectors.shape[1], embeddings.manifest
    images = [read_image(path) for path in args.image or []]
    model, _, fingerprint = model_from_args(args)
    check_made_by(target.path, width, manifest, model, fingerprint)
    hits = search_by_text(model, target, args.text, args.top_k) if args.text else []
    queries: list[dict[str, str]] = [{"text": text} for text in args.text or []]
    if images:
        queries += [{"image": path} for path in args.image]
        hits += search_by_image(model, target, images, args.top_k)
    if args.json:
        out = [
            {**query, "hits": [dataclasses.asdict(hit) for hit in found]}
            for query, found in zip(queries, hits, strict=True)
        ]
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return
    rows = [
        [next(iter(query.values())), str(rank), f"{hit.score:.4f}", hit.source]
        for query, found in zip(queries, hits, strict=True)
        for rank, hit in enumerate(found, 1)
    ]
    print_table(rows, ["query", "rank", "score", "source"])


def add_parsers(commands: Any) -> None:
    """``clip embed``, ``clip zero-shot`` and ``clip search``."""
    embed = commands.add_parser(
        "embed",
        help="embed image files or lines of text into a .safetensors or .npy file, with an index of sources",
        description="Embed images (files, folders searched recursively, glob patterns, list files of one path "
        "per line, or webdataset shards such as 'shards/{00000..00099}.tar', each key a row) "
        "or texts (--texts FILE: one per line) into OUT (.safetensors or .npy), with OUT's index "
        "(OUT.index.jsonl: row -> source) and manifest (OUT.manifest.json: model, options, skipped files) beside "
        "it. Unreadable images are skipped and reported; when none can be read, nothing is written (exit 2). An "
        "interrupted job continues where it stopped when the same command is run again (its work is kept in "
        "OUT.partial/). Under `torchrun ... --no-python clip embed` each process embeds its share and the first "
        "writes the same output one process writes.",
    )
    embed.add_argument("sources", nargs="*", metavar="IMAGES", help="image files, folders, globs, list files or shards")
    embed.add_argument("--texts", metavar="FILE", help="embed the lines of this text file instead of images")
    embed.add_argument(
        "--long-text",
        dest="long_text",
        choices=["truncate", "error", "chunk"],
        default="truncate",
        help="a text longer than the model's context: truncate it (default, as open_clip), stop with an error naming "
        "it, or embed it as the normalised mean of its context-sized chunks' embeddings",
    )
    embed.add_argument("--out", "-o", default="embeddings.safetensors", help="output file (embeddings.safetensors)")
    add_model_arguments(embed)
    embed.add_argument("--batch-size", dest="batch_size", type=int, default=32, help="inputs per batch (32)")
    embed.add_argument("--workers", type=int, default=2, help="image-loading worker processes (2; 0: in-process)")
    embed.add_argument(
        "--no-normalize", dest="normalize", action="store_false", help="store raw embeddings, not unit-length ones"
    )
    embed.add_argument(
        "--shard-size", dest="shard_size", type=int, default=1024, help="inputs per resumable shard (1024)"
    )
    embed.add_argument("--overwrite", action="store_true", help="replace OUT, discarding any unfinished work")
    embed.add_argument("--no-progress", dest="progress", action="store_false", default=None, help="no progress bar")
    embed.set_defaults(run=_cmd_embed)

    zero_shot = commands.add_parser(
        "zero-shot",
        help="classify images among labels, with OpenAI's prompt ensembles",
        description="Classify images among --labels by zero-shot prompt ensembling: each label is put into every "
        "template, the prompts' text embeddings are averaged per label, and each image's probabilities come from "
        "its scaled cosine similarities to them: a softmax over the labels, or for models with a logit bias "
        "(SigLIP-style) a sigmoid per label (see --activation). Templates: OpenAI's 7 'simple' or 80 'imagenet' ones "
        "(from OpenAI's Prompt_Engineering_for_ImageNet notebook), or your own with --template.",
    )
    zero_shot.add_argument(
        "images", nargs="*", metavar="IMAGES", help="image files, folders, globs or list files (also after --labels)"
    )
    zero_shot.add_argument("--labels", nargs="+", metavar="LABEL", help="the class names")
    zero_shot.add_argument("--labels-file", dest="labels_file", metavar="FILE", help="class names, one per line")
    add_model_arguments(zero_shot)
    templates = zero_shot.add_mutually_exclusive_group()
    templates.add_argument(
        "--templates", choices=["simple", "imagenet"], default="simple", help="a template set (simple: 7 templates)"
    )
    templates.add_argument(
        "--template", action="append", metavar="TEXT", help='your own template, e.g. "a sketch of a {}." (repeatable)'
    )
    zero_shot.add_argument(
        "--activation",
        choices=["auto", "softmax", "sigmoid"],
        default="auto",
        help="softmax over the labels, sigmoid per label, or auto: sigmoid for models with a logit bias (auto)",
    )
    zero_shot.add_argument("--top-k", dest="top_k", type=int, default=5, help="labels shown per image (5)")
    zero_shot.add_argument("--batch-size", dest="batch_size", type=int, default=32, help="images per batch (32)")
    zero_shot.add_argument("--json", action="store_true", help="print JSON")
    zero_shot.set_defaults(run=_cmd_zero_shot)

    search = commands.add_parser(
        "search",
        help="find the rows of an embeddings file nearest a text or an image",
        description="Rank the rows of an embeddings file written by `clip embed` by cosine similarity to each "
        "query (--text or --image, repeatable), with the model that made the file: over every row, or through an "
        "index of the file (--index, from `clip index build`).",
    )
    search.add_argument("embeddings", metavar="EMBEDDINGS", help="a .safetensors or .npy file from clip embed")
    add_model_arguments(search)
    search.add_argument("--text", action="append", help="a text query (repeatable)")
    search.add_argument("--image", action="append", metavar="FILE", help="an image query (repeatable)")
    search.add_argument(
        "--index", metavar="PATH", help="search through this index of EMBEDDINGS (from clip index build), not every row"
    )
    search.add_argument("--top-k", dest="top_k", type=int, default=10, help="results per query (10)")
    search.add_argument("--json", action="store_true", help="print JSON")
    search.set_defaults(run=_cmd_search)
