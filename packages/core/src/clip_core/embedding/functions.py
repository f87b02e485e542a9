"""The embed functions behind ``clip embed``: image files or texts, through a model, into an embeddings file.

Each function reads its sources (see :mod:`clip_core.embedding.sources`), embeds them in batches and hands the
batches to an :class:`~clip_core.embedding.job.EmbeddingJob`, which makes the work resumable after a kill and
writes the embeddings file (see :mod:`clip_core.embedding.file`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from clip_core.embedding.job import EmbeddedBatch, EmbeddingJob, EmbedResult
from clip_core.embedding.longtext import LONG_TEXT_POLICIES, LongText, encode_texts
from clip_core.embedding.sources import ImageFiles, LoadedImages, collate_images, source_name
from clip_core.errors import InputError
from clip_core.model import ClipModel
from clip_core.preprocess import ImagePreprocess, get_preprocess
from clip_core.protocols import Tokenizer
from clip_core.tokenizer import get_tokenizer

__all__ = ["embed_images", "embed_texts", "image_batches"]


def embed_images(
    model: ClipModel,
    sources: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    preprocess: ImagePreprocess | None = None,
    batch_size: int = 32,
    workers: int = 0,
    normalize: bool = True,
    shard_size: int = 1024,
    overwrite: bool = False,
    progress: bool | None = False,
    model_source: str | None = None,
    fingerprint: str | None = None,
    on_shard: Callable[[int], None] | None = None,
) -> EmbedResult:
    """Embed image files into ``output`` (``.safetensors`` or ``.npy``) with an index and manifest beside it.

    Images are read as :func:`clip_core.embedding.sources.read_image` reads them and preprocessed by
    ``preprocess`` (default: the card's), ``batch_size`` at a time, in a ``DataLoader`` with ``workers`` worker
    processes, then embedded on the model's device in the model's dtype and mode (call ``model.eval()`` first) and
    stored as float32, L2-normalised unless ``normalize`` is false. Unreadable images are skipped and listed in the
    result and the manifest; when none can be read, :class:`InputError` and nothing is written. The job resumes
    after an interruption (see :mod:`clip_core.embedding.job`): calling again with the same arguments carries on,
    while a different model or options raise :class:`InputError`; an existing output is replaced only with
    ``overwrite``, which also discards unfinished work.

    ``model_source`` says where the model came from (recorded in the manifest); ``fingerprint`` is the model's
    :func:`~clip_core.fingerprint.model_fingerprint`, computed here unless given (give it when the model was
    converted to another dtype after loading). ``progress``: a tqdm bar on stderr (None: when stderr is a terminal).
    ``on_shard(count)`` is called after each shard is durably recorded.
    """
    paths = [os.fspath(source) for source in sources]
    if not paths:
        raise InputError("there are no images to embed")
    pixels = preprocess or get_preprocess(model.card)
    _check_sizes(batch_size, shard_size, workers)

    def encode(positions: list[int]) -> Iterator[EmbeddedBatch]:
        dataset = ImageFiles([paths[position] for position in positions], pixels)
        for loaded, vectors in image_batches(
            model, dataset, batch_size=batch_size, workers=workers, normalize=normalize
        ):
            failures = [(positions[i], error) for i, error in loaded.failures]
            yield EmbeddedBatch([positions[i] for i in loaded.indices], vectors, failures)

    return EmbeddingJob(
        model=model,
        modality="image",
        keys=paths,
        entries=[{"source": source_name(path)} for path in paths],
        output=Path(output),
        normalize=normalize,
        shard_size=shard_size,
        batch_size=batch_size,
        model_source=model_source,
        fingerprint=fingerprint,
    ).run(encode, overwrite=overwrite, progress=progress, on_shard=on_shard)


def embed_texts(
    model: ClipModel,
    texts: Sequence[str],
    output: str | os.PathLike[str],
    *,
    tokenizer: Tokenizer | None = None,
    batch_size: int = 32,
    normalize: bool = True,
    shard_size: int = 1024,
    overwrite: bool = False,
    progress: bool | None = False,
    model_source: str | None = None,
    fingerprint: str | None = None,
    on_shard: Callable[[int], None] | None = None,
    long_text: LongText = "truncate",
) -> EmbedResult:
    """Embed texts into ``output``, row ``i`` holding ``texts[i]``; the index lists each row's text.

    Tokenized by ``tokenizer`` (default: the card's). A text longer than the model's context is truncated
    (``long_text="truncate"``, as open_clip), refused with an :class:`InputError` naming it (``"error"``), or
    embedded as the normalised mean of its context-sized pieces' embeddings (``"chunk"``; see
    :mod:`clip_core.embedding.longtext`). Everything else as :func:`embed_images`.
    """
    if not texts:
        raise InputError("there are no texts to embed")
    tokenize = tokenizer or get_tokenizer(model.card)
    _check_sizes(batch_size, shard_size, 0)
    if long_text not in LONG_TEXT_POLICIES:
        raise InputError(f"long_text must be one of {', '.join(LONG_TEXT_POLICIES)}, got {long_text!r}")

    def encode(positions: list[int]) -> Iterator[EmbeddedBatch]:
        for start in range(0, len(positions), batch_size):
            chunk = positions[start : start + batch_size]
            with torch.inference_mode():
                batch = [texts[position] for position in chunk]
                features = encode_texts(model, batch, tokenize, long_text, normalize)
            yield EmbeddedBatch(chunk, features.cpu(), [])

    return EmbeddingJob(
        model=model,
        modality="text",
        keys=[f"{position}:{text}" for position, text in enumerate(texts)],
        entries=[{"text": text} for text in texts],
        output=Path(output),
        normalize=normalize,
        shard_size=shard_size,
        batch_size=batch_size,
        model_source=model_source,
        fingerprint=fingerprint,
        options={"long_text": long_text},
    ).run(encode, overwrite=overwrite, progress=progress, on_shard=on_shard)


def image_batches(
    model: ClipModel,
    dataset: Dataset[tuple[int, torch.Tensor | None, str]],
    *,
    batch_size: int = 32,
    workers: int = 0,
    normalize: bool = True,
) -> Iterator[tuple[LoadedImages, torch.Tensor]]:
    """Embed an image data set (items as :class:`~clip_core.embedding.sources.ImageFiles` gives them) in batches.

    The pipeline of :func:`embed_images`, without the job around it: a ``DataLoader`` with ``workers`` worker
    processes decodes and preprocesses ``batch_size`` images at a time, the model embeds them on its device in its
    dtype and mode, without gradients. Yields each collated batch (its good indices and its failures) with its
    embeddings, float32 on the CPU, one row per good index, L2-normalised unless ``normalize`` is false.
    """
    device = _device(model)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=collate_images,
        pin_memory=device.type == "cuda",
    )
    for loaded in loader:
        vectors = torch.empty(0, model.embed_dim)
        if loaded.pixels is not None:
            with torch.inference_mode():
                features = model.encode_image(loaded.pixels.to(device, non_blocking=True)).float()
            vectors = (F.normalize(features, dim=-1) if normalize else features).cpu()
        yield loaded, vectors


def _device(model: ClipModel) -> torch.device:
    return next((parameter.device for parameter in model.parameters()), torch.device("cpu"))


def _check_sizes(batch_size: int, shard_size: int, workers: int) -> None:
    if batch_size < 1:
        raise InputError(f"batch size must be at least 1, got {batch_size}")
    if shard_size < 1:
        raise InputError(f"shard size must be at least 1, got {shard_size}")
    if workers < 0:
        raise InputError(f"workers must be 0 or more, got {workers}")
