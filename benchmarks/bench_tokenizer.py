"""Tokenizer throughput: open_clip's reference tokenizer, transformers' CLIPTokenizerFast, and clip-sdk's `clip-bpe`.

Run ``python benchmarks/bench_tokenizer.py`` (options: ``--texts N``, ``--repeats R``, ``--seed S``). It builds
captions deterministically, tokenizes them with each tokenizer, checks that ours gives open_clip's ids for every
caption of every call, and prints texts per second and the ratio to open_clip.

The captions mix zero-shot prompts ("a photo of a {label}.") with 20-40-word sentences whose words follow a Zipf
law over the ~20,000 most frequent whole words of CLIP's own BPE vocabulary (merge order follows corpus frequency),
so the chunk table sees a realistic share of new words. About one caption in twelve holds non-ASCII text (accents,
curly quotes, dashes, symbols, CJK, emoji) and about one in thirty-five an HTML entity or a bare ``&``.

Both tokenizers keep per-process caches (open_clip caches BPE results per word; ours caches ids per chunk, starting
with the vocabulary's 33,275 whole-word tokens, which, like the sentences' words here, are common whole words, so
for words outside CLIP's vocabulary its learning costs more than this shows), so each is timed three ways, in this
order, the tokenizers taking turns at each step:

- "cold": its first call in the process, on N captions (seed S);
- "warm": the best of R more calls on those same captions;
- "new" (the headline): R calls each on N captions neither tokenizer has seen (seeds S+1 ... S+R), the median
  one. This is a data loader's steady state: most words have been seen before, every caption is new.
"""

# ruff: noqa: RUF001 - look-alike characters are caption data here

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import statistics
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--texts", type=int, default=10_000, help="number of captions (default 10,000)")
    parser.add_argument(
        "--repeats", type=int, default=5, help="warm calls (the best counts) and new batches (the median counts)"
    )
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
    fresh = [build_captions(args.texts, args.seed + 1 + r) for r in range(args.repeats)]
    non_ascii = sum(not text.isascii() for text in captions)
    ampersand = sum("&" in text for text in captions)
    print(
        f"{len(captions):,} captions per call (seed {args.seed}; new: seeds {args.seed + 1} to "
        f"{args.seed + args.repeats}): {non_ascii:,} with non-ASCII characters, {ampersand:,} with '&'; "
        f"{os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, "
        f"TOKENIZERS_PARALLELISM={os.environ.get('TOKENIZERS_PARALLELISM', '(unset)')}"
    )

    ours = "clip-sdk clip-bpe"
    reference = "open_clip.tokenize"
    tokenizers: dict[str, Tokenize] = {reference: open_clip.tokenize}
    with tempfile.TemporaryDirectory() as workdir:
        hf = _transformers_tokenizer(Path(workdir))
    if isinstance(hf, str):
        print(f"transformers CLIPTokenizerFast: skipped: {hf}")
    else:
        tokenizers["transformers CLIPTokenizerFast"] = hf
    tokenizers[ours] = ClipBpeTokenizer(clip_core.TokenizerConfig(kind="clip-bpe", context_length=77))
    seconds, outputs = _timed(tokenizers, captions, fresh, args.repeats)

    base = seconds[reference]
    header = {"new": "new (median)", "cold": "cold", "warm": "warm (best)"}
    print(f"{'texts/s (ratio to open_clip)':32s}" + "".join(f" {header[phase]:>20s}" for phase in PHASES))
    for name, times in seconds.items():
        cells = [f"{len(captions) / times[p]:9,.0f} ({base[p] / times[p]:5.2f}x)" for p in PHASES]
        print(f"{name:32s}" + "".join(f" {cell:>20s}" for cell in cells))

    same = [int((a == b).all(dim=1).sum()) for a, b in zip(outputs[ours], outputs[reference], strict=True)]
    print(
        f"clip-sdk ids equal to open_clip's for {sum(same):,} / {len(captions) * len(same):,} captions "
        f"({len(same)} calls: cold, warm, {len(fresh)} new)"
    )
    print(
        f"headline: clip-sdk on new captions {len(captions) / seconds[ours]['new']:,.0f} texts/s, "
        f"{base['new'] / seconds[ours]['new']:.2f}x open_clip"
    )
    if "transformers CLIPTokenizerFast" in outputs:
        hf_ids = outputs["transformers CLIPTokenizerFast"][0]
        first_end = (hf_ids == 49407).int().argmax(dim=1, keepdim=True)  # transformers pads with the end token
        hf_ids = hf_ids.masked_fill(torch.arange(hf_ids.shape[1]) > first_end, 0)
        hf_same = int((hf_ids == outputs[reference][0]).all(dim=1).sum())
        print(f"(transformers ids equal to open_clip's, padding aside, for {hf_same:,} / {len(captions):,} captions)")
    if sum(same) != len(captions) * len(same):
        raise SystemExit("clip-sdk ids differ from open_clip's")


if __name__ == "__main__":
    main()
