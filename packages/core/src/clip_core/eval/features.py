"""Features of an evaluation data set: images through the embedding pipeline, texts in batches, each once.

Images (files or tar members) are read by :func:`clip_core.embedding.sources.read_pixels` in worker processes and
embedded by :func:`clip_core.embedding.functions.image_batches`, the pipeline of ``clip embed``: batched, in the
model's dtype, L2-normalised, float32. An unreadable image is skipped and reported, never silently dropped.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset

from clip_core.embedding.functions import image_batches
from clip_core.embedding.job import Skipped
from clip_core.embedding.sources import read_pixels
from clip_core.errors import InputError
from clip_core.eval.data import ImageSource, TarMember
from clip_core.model import ClipModel
from clip_core.protocols import Tokenizer

__all__ = ["ImageSources", "image_features", "text_features"]


class ImageSources(Dataset[tuple[int, torch.Tensor | None, str]]):
    """Image files and tar members read and preprocessed; an unreadable one gives ``(index, None, reason)``."""

    def __init__(self, sources: Sequence[ImageSource], preprocess: Callable[[Image.Image], torch.Tensor]) -> None:
        self.sources = sources
        self.preprocess = preprocess

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | None, str]:
        source = self.sources[index]
        try:
            if isinstance(source, TarMember):
                with open(source.tar, "rb") as shard:
                    shard.seek(source.offset)
                    data = shard.read(source.size)
                return index, read_pixels(io.BytesIO(data), self.preprocess), ""
            return index, read_pixels(source, self.preprocess), ""
        except InputError as exc:
            return index, None, str(exc).split(": ", 1)[-1]
        except OSError as exc:
            return index, None, exc.strerror or str(exc)


def image_features(
    model: ClipModel,
    sources: Sequence[ImageSource],
    preprocess: Callable[[Image.Image], torch.Tensor],
    *,
    batch_size: int = 64,
    workers: int = 0,
    progress: bool = False,
) -> tuple[torch.Tensor, list[int], list[Skipped]]:
    """Normalised float32 features of the readable images, their indices in ``sources``, and the skipped ones."""
    from tqdm import tqdm  # type: ignore[import-untyped]

    rows: list[torch.Tensor] = []
    kept: list[int] = []
    skipped: list[Skipped] = []
    bar = tqdm(total=len(sources), unit="img", desc="images", disable=not progress, leave=False)
    dataset = ImageSources(sources, preprocess)
    for loaded, vectors in image_batches(model, dataset, batch_size=batch_size, workers=workers):
        rows.append(vectors)
        kept.extend(loaded.indices)
        skipped.extend(Skipped(str(sources[i]), error) for i, error in loaded.failures)
        bar.update(len(loaded.indices) + len(loaded.failures))
    bar.close()
    features = torch.cat(rows) if rows else torch.empty(0, model.embed_dim)
    return features, kept, skipped


def text_features(model: ClipModel, tokenizer: Tokenizer, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
    """Normalised float32 features of ``texts``, ``batch_size`` at a time, on the CPU."""
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            ids = tokenizer(list(texts[start : start + batch_size])).to(device)
            chunks.append(F.normalize(model.encode_text(ids).float(), dim=-1).cpu())
    return torch.cat(chunks) if chunks else torch.empty(0, model.embed_dim)
