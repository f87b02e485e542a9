"""Tokenizer throughput: open_clip's reference tokenizer, transformers' CLIPTokenizerFast, and clip-sdk's `clip-bpe`.

Run ``python benchmarks/bench_tokenizer.py`` (options: ``--texts N``, ``--repeats R``, ``--seed S``). It builds N
captions deterministically, tokenizes them with each tokenizer, checks that ours gives open_clip's ids for every
caption, and prints texts per second and the ratio ours / open_clip.

The captions mix zero-shot prompts ("a photo of a {label}.") with 20-40-word sentences whose words follow a Zipf
law over the ~20,000 most frequent whole words of CLIP's own BPE vocabulary (merge order follows corpus frequency),
so the chunk table sees a realistic share of new words. About one caption in twelve holds non-ASCII text (accents,
curly quotes, dashes, symbols, CJK, emoji) and about one in thirty-five an HTML entity or a bare ``&``.

Both tokenizers keep per-process caches (open_clip caches BPE results per word, ours caches ids per chunk), so
each is timed three ways: its first call in the process ("cold"), the best of R more calls on the same captions
("warm"), and one call on N other captions (seed + 1) after those ("next": a data loader's steady state, where
most words have been seen and some are new).
"""

# ruff: noqa: RUF001 - look-alike characters are caption data here

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import tempfile
import time
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import Any

import torch

LABELS = (  # noqa: SIM905 - a long label list reads better as one string
    "tench goldfish shark hen ostrich goldfinch robin jay magpie chickadee eagle vulture owl salamander newt frog "
    "turtle gecko iguana chameleon lizard alligator crocodile dinosaur snake python cobra scorpion spider tick "
    "centipede peacock quail parrot macaw toucan hornbill hummingbird jellyfish coral snail slug lobster crab "
    "flamingo pelican penguin albatross whale dolphin seal chihuahua beagle bloodhound whippet terrier retriever "
    "spaniel collie rottweiler boxer bulldog husky dalmatian pug poodle wolf coyote dingo hyena fox cat tiger lion "
    "cheetah bear mongoose meerkat beetle ladybug fly bee ant grasshopper cricket cockroach mantis dragonfly "
    "butterfly starfish urchin rabbit hamster porcupine squirrel beaver guinea pig horse zebra pig boar hippopotamus "
    "ox bison ram gazelle camel llama weasel otter skunk badger armadillo orangutan gorilla chimpanzee baboon lemur "
    "elephant panda airliner ambulance backpack bakery balloon banjo barbell barn barrel baseball basketball bathtub "
    "beacon beaker bicycle binoculars birdhouse bookcase bottlecap bucket buckle cab canoe cardigan carousel castle "
    "catamaran cello chainsaw chest church cinema cleaver cliff dwelling cocktail shaker computer keyboard crane "
    "desk dishwasher drum dumbbell envelope espresso maker fire engine flagpole flute football helmet forklift "
    "fountain golf ball gondola gown guillotine hammer harmonica harp hatchet jeep jigsaw puzzle kimono ladle "
    "lampshade laptop lawn mower lighthouse limousine lipstick mailbox maraca marimba mask microphone microwave "
    "minivan mitten monitor mosque motor scooter mountain bike mousetrap obelisk oboe ocarina odometer organ "
    "paddle paintbrush pajamas palace parachute park bench parking meter passenger car pencil perfume piano "
    "pickup truck pinwheel pirate ship pizza plow pole police van poncho pool table printer prison projector "
    "puck racket radiator radio refrigerator revolver rifle rocking chair rugby ball saxophone scoreboard screen "
    "seashore shield shoji skyscraper sleeping bag slot snorkel snowmobile sombrero spatula sports car stopwatch "
    "stove strainer streetcar stretcher suit sunglasses suspension bridge swab sweatshirt swing syringe tank "
    "teapot teddy bear television tennis ball thatched roof throne toaster toilet seat torch totem pole tractor "
    "traffic light trailer truck tray trench coat tricycle trimaran tripod trolleybus trombone tub turnstile "
    "typewriter umbrella unicycle upright piano vacuum vase vault violin volleyball waffle iron wall clock wallet "
    "wardrobe warplane washbasin water bottle water tower whistle wig windsor tie wine bottle wok wooden spoon "
    "yawl yurt comic book crossword street sign guacamole consomme trifle ice cream pretzel cheeseburger hotdog "
    "mashed potato cabbage broccoli cauliflower zucchini cucumber artichoke mushroom strawberry orange lemon fig "
    "pineapple banana jackfruit pomegranate hay carbonara chocolate sauce dough meatloaf burrito espresso cup "
    "eggnog volcano valley geyser sandbar coral reef lakeside promontory daisy corn acorn hip buckeye"
).split()
UNICODE_LABELS = (
    "café", "piñata", "jalapeño", "crème brûlée", "smörgåsbord", "façade", "açaí bowl", "São Paulo skyline",
    "Zürich tram", "Ångström ruler", "rosé wine", "東京タワー", "寿司", "김치", "Москва", "αλεπού", "🐶", "🍕 slice",
)  # fmt: skip
TEMPLATES = (
    "a photo of a {}.", "a bad photo of a {}.", "a photo of many {}.", "a sculpture of a {}.",
    "a photo of the hard to see {}.", "a low resolution photo of the {}.", "a rendering of a {}.", "graffiti of a {}.",
    "a cropped photo of the {}.", "a tattoo of a {}.", "the embroidered {}.", "a bright photo of a {}.",
    "a photo of a clean {}.", "a dark photo of the {}.", "a drawing of a {}.", "a photo of my {}.", "the plastic {}.",
    "a close-up photo of a {}.", "a black and white photo of the {}.", "a painting of the {}.",
    "a pixelated photo of the {}.", "a jpeg corrupted photo of a {}.", "a blurry photo of the {}.", "itap of a {}.",
    "a photo of the large {}.", "a photo of a small {}.", "a toy {}.", "art of the {}.", "a cartoon {}.",
    "a {} in a video game.", "This is a photo of a {}", "A PHOTO OF A {}.",
)  # fmt: skip
NAMES = ("New York", "Paris", "London", "iPhone", "NASA", "Mary", "Tokyo", "USA", "TV", "BBC", "McDonald's")
UNICODE_BITS = (
    "café", "naïve", "résumé", "“quoted”", "it’s", "don’t", "—", "–", "…", "°C", "€5", "£10", "™", "®", "½", "×",
    "São", "Zoë", "über", "niño", "Ελλάδα", "日本語", "中文", "한국어", "🙂", "😂", "🔥", "🎉", "❤️", "\u00a0",
)  # fmt: skip
ENTITIES = ("&amp;", "&quot;", "&#39;", "&lt;3", "&gt;", "&nbsp;", "&eacute;", "&#8217;", "&hellip;", "&amp;amp;")
ATTACHED = (",", ",", ",", ".", "!", "?", ";", ":", "'s", "s", "...")
INSERTED = ("-", "(2019)", "#travel", "@home", "3", "42", "1080p", "2x", "$19.99", "don't", "it's", "we're", "I'm")


def _common_words(count: int) -> list[str]:
    """The most frequent whole words of CLIP's BPE vocabulary (merges made in order of corpus frequency)."""
    data = (files("clip_encoders_text") / "data" / "bpe_simple_vocab_16e6.txt.gz").read_bytes()
    words: list[str] = []
    for line in gzip.decompress(data).decode("utf-8").split("\n")[1:48895]:
        word = line.replace(" ", "")
        if word.endswith("</w>") and word[:-4].isascii() and word[:-4].isalpha() and len(word) > 5:
            words.append(word[:-4])
            if len(words) == count:
                break
    return ["a", "i", *words]


def build_captions(n: int, seed: int = 0) -> list[str]:
    """N captions: 35% prompts, 65% Zipf-distributed 20-40-word sentences; some unicode and HTML entities."""
    rng = random.Random(seed)
    vocabulary = _common_words(20_000)
    weights = [1.0 / (rank + 2.7) for rank in range(len(vocabulary))]
    cumulative = [0.0]
    for weight in weights:
        cumulative.append(cumulative[-1] + weight)
    cumulative.pop(0)
    captions = []
    for _ in range(n):
        if rng.random() < 0.35:
            label = rng.choice(UNICODE_LABELS) if rng.random() < 0.06 else rng.choice(LABELS)
            captions.append(rng.choice(TEMPLATES).format(label))
            continue
        words = rng.choices(vocabulary, cum_weights=cumulative, k=rng.randint(20, 40))
        for _ in range(rng.randint(0, 4)):
            at = rng.randrange(len(words))
            words[at] += rng.choice(ATTACHED)
        for pool, share in ((NAMES, 0.25), (INSERTED, 0.3), (UNICODE_BITS, 0.1), (ENTITIES, 0.03), (("&",), 0.015)):
            if rng.random() < share:
                words.insert(rng.randrange(len(words) + 1), rng.choice(pool))
        text = " ".join(words)
        text = text[0].upper() + text[1:] + rng.choice((".", ".", ".", "!", ""))
        if rng.random() < 0.02:
            text = f"  {text.replace(' ', '   ', 3)} \t"
        captions.append(text)
    return captions


def _timed(call: Callable[[list[str]], Any], captions: list[str], others: list[str], repeats: int) -> list[Any]:
    """``[cold, warm, next]`` seconds, then the outputs of the cold, last warm and next calls."""
    start = time.perf_counter()
    first = last = call(captions)
    cold = time.perf_counter() - start
    warm = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        last = call(captions)
        warm = min(warm, time.perf_counter() - start)
    start = time.perf_counter()
    following = call(others)
    return [cold, warm, time.perf_counter() - start, first, last, following]


def _transformers_tokenizer(workdir: Path) -> Callable[[list[str]], torch.Tensor] | str:
    """transformers' CLIPTokenizerFast built from our merges without network access, or why it cannot be."""
    try:
        from transformers import CLIPTokenizerFast  # type: ignore[attr-defined, unused-ignore]
    except ImportError as error:
        return f"transformers is not importable ({error})"
    from clip_encoders_text.tokenizer import END_TOKEN, START_TOKEN, _read_merges, _vocabulary

    merges = _read_merges()
    vocab = {token: i for i, token in enumerate(_vocabulary(merges))}
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--texts", type=int, default=10_000, help="number of captions (default 10,000)")
    parser.add_argument("--repeats", type=int, default=5, help="warm calls per tokenizer; the best counts")
    parser.add_argument("--seed", type=int, default=0, help="seed of the caption generator")
    args = parser.parse_args()
    torch.set_num_threads(2)

    parallelism = os.environ.get("TOKENIZERS_PARALLELISM")
    import open_clip  # sets TOKENIZERS_PARALLELISM=false for the whole process on import; undo that

    if parallelism is None:
        os.environ.pop("TOKENIZERS_PARALLELISM", None)
    else:
        os.environ["TOKENIZERS_PARALLELISM"] = parallelism

    import clip_core
    from clip_encoders_text.tokenizer import ClipBpeTokenizer

    captions = build_captions(args.texts, args.seed)
    others = build_captions(args.texts, args.seed + 1)
    non_ascii = sum(not text.isascii() for text in captions)
    ampersand = sum("&" in text for text in captions)
    print(
        f"{len(captions):,} captions (seed {args.seed}): {non_ascii:,} with non-ASCII characters, {ampersand:,} "
        f"with '&'; {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, "
        f"TOKENIZERS_PARALLELISM={os.environ.get('TOKENIZERS_PARALLELISM', '(unset)')}"
    )

    ours = ClipBpeTokenizer(clip_core.TokenizerConfig(kind="clip-bpe", context_length=77))
    results: dict[str, list[Any]] = {"open_clip.tokenize": _timed(open_clip.tokenize, captions, others, args.repeats)}
    with tempfile.TemporaryDirectory() as workdir:
        hf = _transformers_tokenizer(Path(workdir))
        if isinstance(hf, str):
            print(f"transformers CLIPTokenizerFast: skipped: {hf}")
        else:
            results["transformers CLIPTokenizerFast"] = _timed(hf, captions, others, args.repeats)
    results["clip-sdk clip-bpe"] = _timed(ours, captions, others, args.repeats)

    reference = results["open_clip.tokenize"]
    print(f"{'texts/s (ratio to open_clip)':32s} {'cold':>18s} {'warm':>18s} {'next':>18s}")
    for name, result in results.items():
        cells = [f"{len(captions) / result[k]:9,.0f} ({reference[k] / result[k]:5.2f}x)" for k in range(3)]
        print(f"{name:32s} {cells[0]:>18s} {cells[1]:>18s} {cells[2]:>18s}")

    same = [
        int((ours_ids == ids).all(dim=1).sum())
        for ours_ids, ids in zip(results["clip-sdk clip-bpe"][3:], reference[3:], strict=True)
    ]
    print(
        f"clip-sdk ids equal to open_clip's for {min(same):,} / {len(captions):,} captions (cold, warm and next calls)"
    )
    if "transformers CLIPTokenizerFast" in results:
        hf_ids = results["transformers CLIPTokenizerFast"][3]
        first_end = (hf_ids == 49407).int().argmax(dim=1, keepdim=True)  # transformers pads with the end token
        hf_ids = hf_ids.masked_fill(torch.arange(hf_ids.shape[1]) > first_end, 0)
        hf_same = int((hf_ids == reference[3]).all(dim=1).sum())
        print(f"(transformers ids equal to open_clip's, padding aside, for {hf_same:,} / {len(captions):,} captions)")
    if min(same) != len(captions):
        raise SystemExit("clip-sdk ids differ from open_clip's")


if __name__ == "__main__":
    main()
