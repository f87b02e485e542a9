"""Prompt templates for zero-shot classification: OpenAI's published ImageNet prompt sets, as data.

Source: OpenAI's CLIP repository, notebook ``notebooks/Prompt_Engineering_for_ImageNet.ipynb``
(https://github.com/openai/CLIP/blob/main/notebooks/Prompt_Engineering_for_ImageNet.ipynb), which lists the 80
templates ensembled for ImageNet zero-shot accuracy in the CLIP paper, and the 7 of them that sequential forward
selection kept as about as good an ensemble (open_clip ships the same lists as ``OPENAI_IMAGENET_TEMPLATES`` and
``SIMPLE_IMAGENET_TEMPLATES``). Each template holds one ``{}`` for the class name.
"""

from __future__ import annotations

from clip_core.errors import InputError

__all__ = ["IMAGENET_TEMPLATES", "SIMPLE_TEMPLATES", "TEMPLATE_SETS", "get_templates"]

#: The 7-template subset the notebook's forward selection found ("simple").
SIMPLE_TEMPLATES: tuple[str, ...] = (
    "itap of a {}.",
    "a bad photo of the {}.",
    "a origami {}.",
    "a photo of the large {}.",
    "a {} in a video game.",
    "art of the {}.",
    "a photo of the small {}.",
)

#: The 80 ImageNet templates of the notebook, in its order ("imagenet").
IMAGENET_TEMPLATES: tuple[str, ...] = (
    "a bad photo of a {}.",
    "a photo of many {}.",
    "a sculpture of a {}.",
    "a photo of the hard to see {}.",
    "a low resolution photo of the {}.",
    "a rendering of a {}.",
    "graffiti of a {}.",
    "a bad photo of the {}.",
    "a cropped photo of the {}.",
    "a tattoo of a {}.",
    "the embroidered {}.",
    "a photo of a hard to see {}.",
    "a bright photo of a {}.",
    "a photo of a clean {}.",
    "a photo of a dirty {}.",
    "a dark photo of the {}.",
    "a drawing of a {}.",
    "a photo of my {}.",
    "the plastic {}.",
    "a photo of the cool {}.",
    "a close-up photo of a {}.",
    "a black and white photo of the {}.",
    "a painting of the {}.",
    "a painting of a {}.",
    "a pixelated photo of the {}.",
    "a sculpture of the {}.",
    "a bright photo of the {}.",
    "a cropped photo of a {}.",
    "a plastic {}.",
    "a photo of the dirty {}.",
    "a jpeg corrupted photo of a {}.",
    "a blurry photo of the {}.",
    "a photo of the {}.",
    "a good photo of the {}.",
    "a rendering of the {}.",
    "a {} in a video game.",
    "a photo of one {}.",
    "a doodle of a {}.",
    "a close-up photo of the {}.",
    "a photo of a {}.",
    "the origami {}.",
    "the {} in a video game.",
    "a sketch of a {}.",
    "a doodle of the {}.",
    "a origami {}.",
    "a low resolution photo of a {}.",
    "the toy {}.",
    "a rendition of the {}.",
    "a photo of the clean {}.",
    "a photo of a large {}.",
    "a rendition of a {}.",
    "a photo of a nice {}.",
    "a photo of a weird {}.",
    "a blurry photo of a {}.",
    "a cartoon {}.",
    "art of a {}.",
    "a sketch of the {}.",
    "a embroidered {}.",
    "a pixelated photo of a {}.",
    "itap of the {}.",
    "a jpeg corrupted photo of the {}.",
    "a good photo of a {}.",
    "a plushie {}.",
    "a photo of the nice {}.",
    "a photo of the small {}.",
    "a photo of the weird {}.",
    "the cartoon {}.",
    "art of the {}.",
    "a drawing of the {}.",
    "a photo of the large {}.",
    "a black and white photo of a {}.",
    "the plushie {}.",
    "a dark photo of a {}.",
    "itap of a {}.",
    "graffiti of the {}.",
    "a toy {}.",
    "itap of my {}.",
    "a photo of a cool {}.",
    "a photo of a small {}.",
    "a tattoo of the {}.",
)

#: The named template sets: ``--templates simple`` and ``--templates imagenet``.
TEMPLATE_SETS: dict[str, tuple[str, ...]] = {"simple": SIMPLE_TEMPLATES, "imagenet": IMAGENET_TEMPLATES}


def get_templates(name: str) -> tuple[str, ...]:
    """The template set called ``name`` (``"simple"`` or ``"imagenet"``); :class:`InputError` for another name."""
    try:
        return TEMPLATE_SETS[name]
    except KeyError:
        raise InputError(f"unknown template set {name!r} (known: {', '.join(TEMPLATE_SETS)})") from None
