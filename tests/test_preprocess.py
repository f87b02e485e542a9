"""Preprocessing: the same pixels as open_clip's inference transform, for real image files of every common mode.

Every parity case writes an image file (PNG or JPEG; WebP and GIF too for the cards' cases) with Pillow, reads it
back as a user's file would be read (the cards' cases as ``clip embed`` reads it), and compares our pixels with
``open_clip.image_transform(..., is_train=False)`` (or the card's open_clip transform) exactly (``torch.equal``).
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import clip_core
from clip_core import ImagePreprocess, InputError, PreprocessConfig
from clip_core.embedding.sources import read_pixels

open_clip = pytest.importorskip("open_clip")

#: Files Pillow writes and reads back, as "<mode>.<suffix>"; "P+transparency" is a palette PNG with a tRNS chunk.
FILE_KINDS = (
    "RGB.png",
    "RGB.jpg",
    "RGBA.png",
    "L.png",
    "L.jpg",
    "LA.png",
    "P.png",
    "P+transparency.png",
    "1.png",
    "I;16.png",
    "CMYK.jpg",
)
_BYTES_PER_PIXEL = {"RGB": 3, "RGBA": 4, "L": 1, "LA": 2, "P": 1, "I;16": 2, "CMYK": 4}

#: Pillow warns when a palette image with per-entry alpha becomes RGB; open_clip's transform warns the same way.
PALETTE_ALPHA_WARNING = "ignore:Palette images with Transparency expressed in bytes:UserWarning"


def write_and_read(
    directory: Path, kind: str, size: tuple[int, int], seed: int, *, extremes: bool = False
) -> Image.Image:
    """Write an image file of ``kind`` with pseudo-random pixels and read it back with Pillow.

    ``extremes`` keeps only the darkest and brightest byte values, where bicubic overshoot and clipping show most.
    """
    mode, suffix = kind.rsplit(".", 1)
    transparent = mode == "P+transparency"
    mode = "P" if transparent else mode
    rng = random.Random(seed)
    width, height = size
    row = (width + 7) // 8 if mode == "1" else width * _BYTES_PER_PIXEL[mode]
    data = rng.randbytes(row * height)
    if extremes:
        data = bytes(0 if byte < 128 else 255 for byte in data)
    image = Image.frombytes(mode, size, data)
    options: dict[str, Any] = {}
    if mode == "P":
        image.putpalette(rng.randbytes(768))
        if transparent:  # one transparent index, or one alpha per palette entry
            options["transparency"] = rng.randrange(256) if rng.random() < 0.5 else rng.randbytes(rng.randint(1, 256))
    path = directory / f"image.{suffix}"
    image.save(path, **options)
    read = Image.open(path)
    read.load()  # reads the pixels and closes the file
    assert read.mode == mode
    return read


def preprocess_config(**settings: Any) -> PreprocessConfig:
    """Settings validated as a card's ``preprocess`` section is; the rest take their defaults."""
    return PreprocessConfig.model_validate(settings)


def open_clip_transform(config: PreprocessConfig) -> Callable[[Image.Image], torch.Tensor]:
    """open_clip's inference transform for the same settings."""
    transform: Callable[[Image.Image], torch.Tensor] = open_clip.image_transform(
        config.image_size,
        is_train=False,
        mean=config.mean,
        std=config.std,
        resize_mode=config.resize_mode,
        interpolation=config.interpolation,
        fill_color=config.fill_color,
    )
    return transform


def assert_same_as_open_clip(config: PreprocessConfig, image: Image.Image) -> None:
    """Our pixels equal open_clip's exactly; where open_clip cannot resize (a side rounds to 0), we raise InputError."""
    try:
        expected = open_clip_transform(config)(image)
    except ValueError:
        with pytest.raises(InputError, match="too thin"):
            ImagePreprocess(config)(image)
        return
    actual = ImagePreprocess(config)(image)
    size = config.image_size
    assert actual.shape == expected.shape == (3, size, size)
    assert actual.dtype == expected.dtype == torch.float32
    differ = (actual != expected).sum().item()
    assert torch.equal(actual, expected), f"{differ} values differ for a {image.mode} {image.size} image, {config}"


configs = st.builds(
    PreprocessConfig,
    image_size=st.integers(1, 40),
    mean=st.tuples(*[st.floats(0, 1)] * 3),
    std=st.tuples(*[st.floats(0.05, 1)] * 3),
    interpolation=st.sampled_from(["bicubic", "bilinear"]),
    resize_mode=st.sampled_from(["shortest", "longest", "squash"]),
    fill_color=st.integers(0, 255),
)


@pytest.mark.filterwarnings(PALETTE_ALPHA_WARNING)
@settings(max_examples=150, deadline=None)
@given(
    config=configs,
    kind=st.sampled_from(FILE_KINDS),
    size=st.tuples(st.integers(1, 96), st.integers(1, 96)),
    seed=st.integers(0, 2**32 - 1),
    extremes=st.booleans(),
)
def test_same_pixels_as_open_clip_for_any_mode_and_size(
    tmp_path_factory: pytest.TempPathFactory,
    config: PreprocessConfig,
    kind: str,
    size: tuple[int, int],
    seed: int,
    extremes: bool,
) -> None:
    """For any image file of any mode and size, and any settings, our pixels equal open_clip's exactly."""
    image = write_and_read(tmp_path_factory.mktemp("image"), kind, size, seed, extremes=extremes)
    assert_same_as_open_clip(config, image)


HAND_PICKED_SIZES = {
    "landscape": (640, 480),
    "portrait": (480, 640),
    "square": (500, 500),
    "already-the-target": (224, 224),
    "smaller-than-target": (100, 37),
    "one-pixel-wide": (1, 300),
    "one-pixel-tall": (300, 1),
    "one-pixel": (1, 1),
    "odd-crop-offset-0.5": (225, 224),
    "odd-crop-offset-1.5": (224, 227),
    "odd-crop-offset-2.5": (229, 224),
    "odd-resize-and-crop": (333, 257),
}


@pytest.mark.parametrize("resize_mode", ["shortest", "longest", "squash"])
@pytest.mark.parametrize("size", HAND_PICKED_SIZES.values(), ids=HAND_PICKED_SIZES.keys())
def test_same_pixels_as_open_clip_at_224_for_hand_picked_sizes(
    tmp_path: Path, size: tuple[int, int], resize_mode: str
) -> None:
    config = preprocess_config(image_size=224, resize_mode=resize_mode, fill_color=114)
    assert_same_as_open_clip(config, write_and_read(tmp_path, "RGB.jpg", size, seed=0))


@pytest.mark.filterwarnings(PALETTE_ALPHA_WARNING)
@pytest.mark.parametrize("resize_mode", ["shortest", "longest", "squash"])
@pytest.mark.parametrize("kind", FILE_KINDS)
def test_same_pixels_as_open_clip_for_every_file_mode(tmp_path: Path, kind: str, resize_mode: str) -> None:
    config = preprocess_config(image_size=24, resize_mode=resize_mode, fill_color=200)
    assert_same_as_open_clip(config, write_and_read(tmp_path, kind, (37, 20), seed=1))


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "LA", "CMYK"])
def test_longest_mode_pads_every_channel_with_the_fill_color(mode: str) -> None:
    config = preprocess_config(image_size=8, resize_mode="longest", fill_color=128, mean=(0, 0, 0), std=(1, 1, 1))
    pixels = ImagePreprocess(config)(Image.new(mode, (8, 2)))
    rgb_fill = Image.new(mode, (1, 1), (128,) * len(mode)).convert("RGB").getpixel((0, 0))
    expected = torch.tensor(rgb_fill, dtype=torch.float32).div(255).view(3, 1)
    assert torch.equal(pixels[:, 0], expected.expand(3, 8))  # the padded top row
    assert torch.equal(pixels[:, 7], expected.expand(3, 8))  # the padded bottom row


def test_longest_mode_refuses_an_image_whose_short_side_would_vanish() -> None:
    config = preprocess_config(image_size=16, resize_mode="longest")
    image = Image.new("RGB", (1, 33))
    with pytest.raises(ValueError, match="must be > 0"):
        open_clip_transform(config)(image)
    with pytest.raises(InputError, match=r"1x33 image is too thin for resize_mode 'longest' at 16 pixels"):
        ImagePreprocess(config)(image)


def test_batch_stacks_images_of_any_size_into_b_3_s_s() -> None:
    preprocess = ImagePreprocess(preprocess_config(image_size=16))
    images = [Image.new("RGB", (40, 20), "red"), Image.new("L", (7, 9)), Image.new("RGBA", (16, 16))]
    pixels = preprocess.batch(images)
    assert pixels.shape == (3, 3, 16, 16)
    assert pixels.dtype == torch.float32
    for row, image in zip(pixels, images, strict=True):
        assert torch.equal(row, preprocess(image))


def test_batch_of_no_images_raises_input_error() -> None:
    with pytest.raises(InputError, match="at least one image"):
        ImagePreprocess(preprocess_config(image_size=16)).batch([])


NOT_IMAGES = [torch.zeros(3, 16, 16), "image.png", b"\x89PNG", None]


@pytest.mark.parametrize("value", NOT_IMAGES, ids=lambda value: type(value).__name__)
def test_anything_but_a_pil_image_raises_input_error_naming_its_type(value: object) -> None:
    preprocess = ImagePreprocess(preprocess_config(image_size=16))
    with pytest.raises(InputError, match=f"got a {type(value).__name__}"):
        preprocess(value)  # type: ignore[arg-type]
    with pytest.raises(InputError, match=f"got a {type(value).__name__}"):
        preprocess.batch([Image.new("RGB", (16, 16)), value])  # type: ignore[list-item]


def test_get_preprocess_follows_the_cards_preprocessing(tmp_path: Path) -> None:
    preprocess = clip_core.get_preprocess("tiny")
    assert preprocess.config == clip_core.get_card("tiny").preprocess
    assert preprocess.config.image_size == 32
    image = write_and_read(tmp_path, "RGB.png", (50, 40), seed=2)
    assert preprocess(image).shape == (3, 32, 32)
    assert_same_as_open_clip(preprocess.config, image)


def test_repr_shows_every_setting() -> None:
    config = preprocess_config(
        image_size=32, resize_mode="squash", interpolation="bilinear", mean=(0.5, 0.25, 0.0), std=(1.0, 2.0, 0.5)
    )
    assert repr(ImagePreprocess(config)) == (
        "ImagePreprocess(image_size=32, resize_mode='squash', interpolation='bilinear', "
        "mean=(0.5, 0.25, 0.0), std=(1.0, 2.0, 0.5), fill_color=0)"
    )


#: Files as `clip embed` meets them: (format, mode written). WebP stores RGB(A) and GIF a palette or grey, whatever
#: the mode written; "P+transparency" is a palette with a transparent index.
CARD_FILE_KINDS = [
    ("jpg", "RGB"),
    ("jpg", "L"),
    ("jpg", "CMYK"),
    ("png", "RGB"),
    ("png", "RGBA"),
    ("png", "L"),
    ("png", "LA"),
    ("png", "P+transparency"),
    ("png", "I;16"),
    ("png", "1"),
    ("webp", "RGB"),
    ("webp", "RGBA"),
    ("gif", "P"),
    ("gif", "P+transparency"),
    ("gif", "L"),
    ("gif", "1"),
]
CARD_FILE_SIZES = {"tiny": (3, 2), "wide": (300, 120), "tall": (120, 300), "larger-than-target": (500, 400)}


def write_image_file(directory: Path, suffix: str, kind: str, size: tuple[int, int], seed: int) -> Path:
    """An image file of ``kind`` (a mode, or "P+transparency") with pseudo-random pixels, saved as ``suffix``."""
    mode = "P" if kind == "P+transparency" else kind
    rng = random.Random(seed)
    width, height = size
    row = (width + 7) // 8 if mode == "1" else width * _BYTES_PER_PIXEL[mode]
    image = Image.frombytes(mode, size, rng.randbytes(row * height))
    options: dict[str, Any] = {}
    if mode == "P":
        image.putpalette(rng.randbytes(768))
        if kind == "P+transparency":
            options["transparency"] = rng.randrange(256)
    path = directory / f"{kind.replace(';', '')}.{suffix}"
    image.save(path, **options)
    return path


@pytest.fixture(scope="module")
def open_clip_card_transforms() -> dict[str, Callable[[Image.Image], torch.Tensor]]:
    """open_clip's inference transforms of ViT-B-32 and ViT-L-14-336 (OpenAI's 224- and 336-pixel models).

    ViT-B-32's comes from ``open_clip.create_model_and_transforms`` itself (the model built on the meta device);
    ViT-L-14-336's is built the same way that function builds it (defaults, the `openai` tag's settings, the
    tower's image size), to spare building a ViT-L.
    """
    from open_clip.transform import PreprocessCfg, image_transform_v2, merge_preprocess_dict

    _, _, vit_b_32 = open_clip.create_model_and_transforms("ViT-B-32", device="meta")
    settings = merge_preprocess_dict(PreprocessCfg(), open_clip.get_pretrained_cfg("ViT-L-14-336", "openai"))
    size = open_clip.get_model_config("ViT-L-14-336")["vision_cfg"]["image_size"]
    vit_l_14_336 = image_transform_v2(PreprocessCfg(**{**settings, "size": size}), is_train=False)
    return {"ViT-B-32": vit_b_32, "ViT-L-14-336": vit_l_14_336}


@pytest.mark.filterwarnings(PALETTE_ALPHA_WARNING)
@pytest.mark.parametrize("card", ["ViT-B-32", "ViT-L-14-336"])
@pytest.mark.parametrize("size", CARD_FILE_SIZES.values(), ids=CARD_FILE_SIZES.keys())
@pytest.mark.parametrize(("suffix", "kind"), CARD_FILE_KINDS, ids=[f"{k}.{s}" for s, k in CARD_FILE_KINDS])
def test_files_read_as_clip_embed_reads_them_give_open_clips_pixels_for_the_card(
    tmp_path: Path,
    open_clip_card_transforms: dict[str, Callable[[Image.Image], torch.Tensor]],
    card: str,
    size: tuple[int, int],
    suffix: str,
    kind: str,
) -> None:
    """`clip embed`'s pixels (read_pixels) equal open_clip's for ``Image.open`` of the same file, exactly."""
    path = write_image_file(tmp_path, suffix, kind, size, seed=zlib.crc32(f"{card}{size}{suffix}{kind}".encode()))
    ours = read_pixels(path, clip_core.get_preprocess(card))
    with Image.open(path) as image:
        theirs = open_clip_card_transforms[card](image)
    side = clip_core.get_card(card).preprocess.image_size
    assert ours.shape == theirs.shape == (3, side, side)
    assert torch.equal(ours, theirs), f"{(ours != theirs).sum().item()} values differ"
