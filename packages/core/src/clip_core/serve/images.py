"""Images coming in (``data:`` URLs, uploads) and going out (thumbnails of listed files)."""

from __future__ import annotations

import base64
import binascii
import io
import os
import warnings

from PIL import Image, UnidentifiedImageError

from clip_core.embedding.sources import read_image
from clip_core.errors import InputError

__all__ = ["MAX_PIXELS", "THUMBNAIL_SIZE", "decode_data_url", "decode_image", "thumbnail"]

#: Images larger than this many pixels are refused before they are decoded (a compressed file can hide a huge one).
MAX_PIXELS = 64_000_000
#: The longer side of a thumbnail, in pixels.
THUMBNAIL_SIZE = 256


def decode_data_url(url: str) -> Image.Image:
    """The image in a ``data:[<type>][;base64],<data>`` URL; :class:`InputError` saying what is wrong otherwise.

    Only base64 data URLs are read; the service never fetches ``http(s)`` URLs.
    """
    if not url.startswith("data:"):
        shown = url[:40] + ("..." if len(url) > 40 else "")
        raise InputError(f"an image is given as a data: URL (data:image/png;base64,...), got {shown!r}")
    header, comma, data = url.partition(",")
    if not comma or not header.endswith(";base64"):
        raise InputError("an image data: URL must be base64 encoded (data:image/png;base64,...)")
    try:
        content = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InputError("the image data: URL holds invalid base64") from None
    return decode_image(content)


def decode_image(content: bytes) -> Image.Image:
    """Decode an image file's bytes; :class:`InputError` when they are not an image Pillow reads."""
    if not content:
        raise InputError("the image is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(content))
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise InputError(f"the image is {width}x{height} pixels, over the limit of {MAX_PIXELS:,}")
            image.load()
    except InputError:
        raise
    except Exception as exc:  # Pillow raises many kinds for corrupt data
        reason = "not an image Pillow can read" if isinstance(exc, UnidentifiedImageError) else str(exc)
        raise InputError(f"the image cannot be decoded ({reason or type(exc).__name__})") from None
    return image


def thumbnail(path: str | os.PathLike[str], size: int = THUMBNAIL_SIZE) -> bytes:
    """A JPEG of the image at ``path`` whose longer side is at most ``size``; :class:`InputError` if unreadable."""
    image = read_image(path)
    image.thumbnail((size, size))
    if image.mode != "RGB":
        with warnings.catch_warnings():  # Pillow's note that a palette's transparency is dropped
            warnings.simplefilter("ignore", UserWarning)
            image = image.convert("RGB")
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=85)
    return out.getvalue()
