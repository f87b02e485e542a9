"""Tokenizer throughput: open_clip's reference tokenizer, transformers' CLIPTokenizerFast, and clip-sdk's `clip-bpe`.

Run ``python benchmarks/bench_tokenizer.py`` (options: ``--texts N``, ``--repeats R``, ``--seed S``, ``--captions
vocabulary|realistic|both``). It builds captions deterministically (``_captions.py``), tokenizes them with each
tokenizer, checks that ours gives open_clip's ids for every caption of every call, and prints texts per second and
the ratio to open_clip, for two caption sets, each in a fresh process of its own (so that "cold" is cold):

- "vocabulary": zero-shot prompts ("a photo of a {label}.") and 20-40-word sentences of the ~20,000 most frequent
  whole words of CLIP's own BPE vocabulary; about one caption in twelve holds non-ASCII text and one in thirty-five
  an HTML entity or a bare ``&``. clip-sdk's chunk table starts with the vocabulary's 33,275 whole-word tokens, so
  it already holds nearly every word of these sentences: the best case for it.
- "realistic": web-like captions (alt texts, social posts, product listings, stock-photo titles) with names, places,
  dates, prices, file names and scores (fresh numbers in each), misspellings and typos, hashtags, emoji, mojibake,
  entities; about one in eight in another Latin-script language and one in six in a non-Latin script (CJK,
  Cyrillic, Arabic, Hebrew, Devanagari, Greek, Thai, Tamil). Many of their chunks are new to every cache.

Every tokenizer keeps per-process caches (open_clip caches BPE results per word, ours ids per chunk), so each is
timed three ways, in this order, the tokenizers taking turns at each step:

- "cold": its first call in the process, on N captions (seed S);
- "warm": the best of R more calls on those same captions;
- "new" (the headline): R calls each on N captions neither tokenizer has seen (seeds S+1 ... S+R), the median
  one. This is a data loader's steady state: most words have been seen before, every caption is new.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _captions import realistic_captions, vocabulary_captions

CAPTION_SETS = {"vocabulary": vocabulary_captions, "realistic": realistic_captions}
Tokenize = Callable[[list[str]], torch.Tensor]
PHASES = ("new", "cold", "warm")


def _timed(
    tokenizers: dict[str, Tokenize], captions: list[str], fresh: list[list[str]], repeats: int
) -> tuple[dict[str, dict[str, float]], dict[str, list[torch.Tensor]]]:
    """Seconds per tokenizer and phase, and per tokenizer the ids of its cold call, last warm call and fresh calls.

    The tokenizers take turns at every step, so that a slower or busier moment of a shared machine hits them alike.
    """
    seconds: dict[str, dict[str, list[float]]] = {name: {phase: [] for phase in PHASES} for name in tokenizers}
    outputs: dict[str, list[torch.Tensor]] = {name: [] for name in tokenizers}

    def call(name: str, phase: str, texts: list[str]) -> torch.Tensor:
        start = time.perf_counter()
        ids = tokenizers[name](texts)
        seconds[name][phase].append(time.perf_counter() - start)
        return ids

    for name in tokenizers:
        outputs[name].append(call(name, "cold", captions))
    last: dict[str, torch.Tensor] = {}
    for _ in range(repeats):
        for name in tokenizers:
            last[name] = call(name, "warm", captions)
    for name in tokenizers:
        outputs[name].append(last[name])
    for batch in fresh:
        for name in tokenizers:
            outputs[name].append(call(name, "new", batch))
    summary = {
        name: {"cold": times["cold"][0], "warm": min(times["warm"]), "new": statistics.median(times["new"])}
        for name, times in seconds.items()
    }
    return summary, outputs


def _transformers_tokenizer(workdir: Path) -> Callable[[list[str]], torch.Tensor] | str:
    """transformers' CLIPTokenizerFast built from our merges without network access, or why it cannot be."""
    try:
        from transformers import CLIPTokenizerFast  # type: ignore[attr-defined, unused-ignore]
    except ImportError as error:
        return f"transformers is not importable ({error})"
    from clip_encoders_text.vocab import END_TOKEN, START_TOKEN, read_merges, vocabulary

    merges = read_merges()
    vocab = {token: i for i, token in enumerate(vocabulary(merges))}
    specials = {"bos_token": START_TOKEN, "eos_token": END_TOKEN, "unk_token": END_TOKEN, "pad_token": END_TOKEN}
    (workdir / "vocab.json").write_text(json.dumps(vocab))
    (workdir / "merges.txt").write_text("#version: 0.2\n" + "\n".join(f"{a} {b}" for a, b in merges) + "\n")
    attempts: list[Callable[[], Any]] = [
        lambda: CLIPTokenizerFast(vocab=vocab, merges=merges, **specials),  # transformers 5
        lambda: CLIPTokenizerFast(  # transformers 4
            vocab_file=str(workdir / "vocab.json"), merges_file=str(workdir / "merges.txt"), **specials
        ),
    ]
    for attempt in attempts:
        try:
            tokenizer = attempt()
            if tokenizer("a photo of a cat.")["input_ids"] != [49406, 320, 1125, 539, 320, 2368, 269, 49407]:
                continue
        except Exception:  # any failure means: try the next constructor
            continue

        def tokenize(texts: list[str], tokenizer: Any = tokenizer) -> torch.Tensor:
            out = tokenizer(list(texts), padding="max_length", max_length=77, truncation=True, return_tensors="pt")
            ids: torch.Tensor = out["input_ids"]
            return ids

        return tokenize
    return "no CLIPTokenizerFast constructor of this transformers version accepted local vocab and merges"


def _non_latin(text: str) -> bool:
    """Whether ``text`` holds a letter of a script other than Latin."""
    return any(c.isalpha() and not unicodedata.name(c, "").startswith("LATIN") for c in text)


def _equal_rows(ids: torch.Tensor, reference: torch.Tensor, padded_with_end: bool = False) -> int:
    """How many rows of ``ids`` equal ``reference``'s (after the first end token, zeros if ``padded_with_end``)."""
    if padded_with_end:  # transformers pads with the end token
        first_end = (ids == 49407).int().argmax(dim=1, keepdim=True)
        ids = ids.masked_fill(torch.arange(ids.shape[1]) > first_end, 0)
    return int((ids == reference).all(dim=1).sum())


def bench_captions(kind: str, texts: int, repeats: int, seed: int) -> bool:
    """Time every tokenizer on caption set ``kind`` and print the table; whether ours gave open_clip's ids."""
    torch.set_num_threads(2)
    parallelism = os.environ.get("TOKENIZERS_PARALLELISM")
    import open_clip  # sets TOKENIZERS_PARALLELISM=false for the whole process on import; undo that

    if parallelism is None:
        os.environ.pop("TOKENIZERS_PARALLELISM", None)
    else:
        os.environ["TOKENIZERS_PARALLELISM"] = parallelism

    import clip_core
    from clip_encoders_text.tokenizer import ClipBpeTokenizer

    build = CAPTION_SETS[kind]
    captions = build(texts, seed)
    fresh = [build(texts, seed + 1 + r) for r in range(repeats)]
    non_ascii = sum(not text.isascii() for text in captions)
    non_latin = sum(_non_latin(text) for text in captions)
    ampersand = sum("&" in text for text in captions)
    print(
        f"{kind} captions: {len(captions):,} per call (seed {seed}; new: seeds {seed + 1} to {seed + repeats}): "
        f"{non_ascii:,} with non-ASCII characters, {non_latin:,} with non-Latin letters, {ampersand:,} with '&'; "
        f"{os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, "
        f"TOKENIZERS_PARALLELISM={os.environ.get('TOKENIZERS_PARALLELISM', '(unset)')}"
    )

    ours = "clip-sdk clip-bpe"
    reference = "open_clip.tokenize"
    hf_name = "transformers CLIPTokenizerFast"
    tokenizers: dict[str, Tokenize] = {reference: open_clip.tokenize}
    with tempfile.TemporaryDirectory() as workdir:
        hf = _transformers_tokenizer(Path(workdir))
    if isinstance(hf, str):
        print(f"{hf_name}: skipped: {hf}")
    else:
        tokenizers[hf_name] = hf
    tokenizers[ours] = ClipBpeTokenizer(clip_core.TokenizerConfig(kind="clip-bpe", context_length=77))
    seconds, outputs = _timed(tokenizers, captions, fresh, repeats)

    lengths = (outputs[reference][0] == 49407).int().argmax(dim=1) + 1
    print(
        f"ids per caption (open_clip, start and end included): mean {lengths.float().mean():.1f}, "
        f"max {int(lengths.max())}"
    )
    base = seconds[reference]
    header = {"new": "new (median)", "cold": "cold", "warm": "warm (best)"}
    print(f"{'texts/s (ratio to open_clip)':32s}" + "".join(f" {header[phase]:>20s}" for phase in PHASES))
    for name, times in seconds.items():
        cells = [f"{len(captions) / times[p]:9,.0f} ({base[p] / times[p]:5.2f}x)" for p in PHASES]
        print(f"{name:32s}" + "".join(f" {cell:>20s}" for cell in cells))

    calls = f"{len(outputs[reference])} calls: cold, warm, {len(fresh)} new"
    total = len(captions) * len(outputs[reference])
    same = sum(map(_equal_rows, outputs[ours], outputs[reference]))
    print(f"clip-sdk ids equal to open_clip's for {same:,} / {total:,} captions ({calls})")
    if hf_name in outputs:
        pairs = zip(outputs[hf_name], outputs[reference], strict=True)
        hf_same = sum(_equal_rows(a, b, padded_with_end=True) for a, b in pairs)
        print(f"transformers ids equal to open_clip's, padding aside, for {hf_same:,} / {total:,} captions")
    print(
        f"headline ({kind} captions): clip-sdk on new captions {len(captions) / seconds[ours]['new']:,.0f} texts/s, "
        f"{base['new'] / seconds[ours]['new']:.2f}x open_clip"
    )
    return same == total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--texts", type=int, default=10_000, help="number of captions (default 10,000)")
    parser.add_argument(
        "--repeats", type=int, default=5, help="warm calls (the best counts) and new batches (the median counts)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the caption generators")
    parser.add_argument(
        "--captions",
        choices=("both", *CAPTION_SETS),
        default="both",
        help="caption set (default: both, each in a fresh process, one after the other)",
    )
    args = parser.parse_args()
    if args.captions != "both":
        if not bench_captions(args.captions, args.texts, args.repeats, args.seed):
            raise SystemExit("clip-sdk ids differ from open_clip's")
        return
    options = ["--texts", str(args.texts), "--repeats", str(args.repeats), "--seed", str(args.seed)]
    headlines, failed = [], []
    for kind in CAPTION_SETS:
        run = subprocess.run(
            [sys.executable, __file__, "--captions", kind, *options], stdout=subprocess.PIPE, text=True, check=False
        )
        print(run.stdout, flush=True)
        headlines += [line for line in run.stdout.splitlines() if line.startswith("headline")]
        if run.returncode != 0:
            failed.append(kind)
    print("\n".join(headlines))
    if failed:
        raise SystemExit(f"failed (see above) on the {' and '.join(failed)} captions")


if __name__ == "__main__":
    main()
