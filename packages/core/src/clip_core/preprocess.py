"""Image preprocessing per card: the same pixels as OpenAI's and open_clip's inference transforms.

The steps and their order follow those transforms exactly (resize with Pillow in the image's own mode, center
crop or pad, convert to RGB, scale to [0, 1], normalise), without needing torchvision.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from PIL import Image, ImageOps

from clip_core.cards import ModelCard, PreprocessConfig
from clip_core.catalog import CardSpec, get_card
from clip_core.errors import InputError

__all__ = ["ImagePreprocess", "get_preprocess"]

_FILTERS = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}


class ImagePreprocess:
    """Callable turning a PIL image into normalised pixels ``[3, image_size, image_size]`` (float32)."""

    def __init__(self, config: PreprocessConfig) -> None:
        self.config = config
        self._filter = _FILTERS[config.interpolation]
        self._mean = torch.tensor(config.mean, dtype=torch.float32).view(3, 1, 1)
        self._std = torch.tensor(config.std, dtype=torch.float32).view(3, 1, 1)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        if not isinstance(image, Image.Image):
            raise InputError(f"preprocess takes a PIL image, got a {type(image).__name__}")
        size = self.config.image_size
        mode = self.config.resize_mode
        if mode == "squash":
            image = _resize(image, (size, size), self._filter)
        elif mode == "shortest":
            image = _center_crop(_resize(image, _shorter_side_to(image.size, size), self._filter), size)
        else:
            image = _resize(image, _longer_side_to(image.size, size), self._filter)
            image = _center_crop(_pad_to(image, size, self.config.fill_color), size)
        if image.mode != "RGB":
            image = image.convert("RGB")
        width, height = image.size
        pixels = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8).view(height, width, 3)
        tensor = pixels.permute(2, 0, 1).contiguous().to(torch.float32).div(255)
        return tensor.sub_(self._mean).div_(self._std)

    def batch(self, images: Iterable[Image.Image]) -> torch.Tensor:
        """Preprocess several images into one batch ``[B, 3, image_size, image_size]``."""
        tensors = [self(image) for image in images]
        if not tensors:
            raise InputError("preprocess.batch needs at least one image")
        return torch.stack(tensors)

    def __repr__(self) -> str:
        c = self.config
        return (
            f"ImagePreprocess(image_size={c.image_size}, resize_mode={c.resize_mode!r}, "
            f"interpolation={c.interpolation!r}, mean={c.mean}, std={c.std}, fill_color={c.fill_color})"
        )


def get_preprocess(card: CardSpec | ModelCard) -> ImagePreprocess:
    """The image preprocessing the card prescribes."""
    return ImagePreprocess(get_card(card).preprocess)


def _resize(image: Image.Image, size: tuple[int, int], resample: Image.Resampling) -> Image.Image:
    return image if image.size == size else image.resize(size, resample)


def _shorter_side_to(size: tuple[int, int], target: int) -> tuple[int, int]:
    """torchvision's arithmetic for ``Resize(int)``: the shorter side becomes ``target``, the longer is floored."""
    width, height = size
    short, long = (width, height) if width <= height else (height, width)
    new_long = int(target * long / short)
    return (target, new_long) if width <= height else (new_long, target)


def _longer_side_to(size: tuple[int, int], target: int) -> tuple[int, int]:
    """open_clip's ``ResizeKeepRatio(longest=1)``: the longer side becomes ``target``, the shorter is rounded."""
    width, height = size
    ratio = max(width / target, height / target)
    new_width, new_height = round(width / ratio), round(height / ratio)
    if not (new_width and new_height):
        raise InputError(
            f"a {width}x{height} image is too thin for resize_mode 'longest' at {target} pixels: "
            "its shorter side would round to 0 pixels"
        )
    return new_width, new_height


def _pad_to(image: Image.Image, target: int, fill: int) -> Image.Image:
    """open_clip's ``CenterCropOrPad`` padding (torchvision's ``F.pad``): ``fill`` in every band, the palette kept.

    A bare int would be read by Pillow as a packed pixel (only the first band gets ``fill``), so multi-band images
    get one ``fill`` per band, as torchvision passes it.
    """
    width, height = image.size
    if width >= target and height >= target:
        return image
    dx, dy = max(target - width, 0), max(target - height, 0)
    border = (dx // 2, dy // 2, (dx + 1) // 2, (dy + 1) // 2)
    bands = len(image.getbands())
    padded = ImageOps.expand(image, border=border, fill=fill if bands == 1 else (fill,) * bands)
    if image.mode == "P" and (palette := image.getpalette()) is not None:
        padded.putpalette(palette)
    return padded


def _center_crop(image: Image.Image, target: int) -> Image.Image:
    width, height = image.size
    top = round((height - target) / 2.0)
    left = round((width - target) / 2.0)
    if (left, top, width, height) == (0, 0, target, target):
        return image
    return image.crop((left, top, left + target, top + target))
