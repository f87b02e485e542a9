"""The service's state and work: the model behind two dynamic batchers, the searcher, thumbnails, metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from starlette.concurrency import run_in_threadpool

from clip_core.errors import InputError
from clip_core.index import SearchHit
from clip_core.serve.batcher import DynamicBatcher
from clip_core.serve.encoder import Encoder
from clip_core.serve.images import decode_data_url, thumbnail
from clip_core.serve.metrics import Metrics
from clip_core.serve.searchers import Searcher
from clip_core.templates import get_templates
from clip_core.zeroshot import zero_shot_probabilities

__all__ = ["Service"]

_THUMBNAILS_CACHED = 1024


class Service:
    """Everything the routes use. Start it (:meth:`start`) in the event loop that serves, stop it after."""

    def __init__(
        self,
        encoder: Encoder,
        searcher: Searcher | None,
        *,
        model_name: str,
        names: Sequence[str] = (),
        max_batch: int = 64,
        max_wait_ms: float = 5.0,
    ) -> None:
        self.encoder = encoder
        self.searcher = searcher
        self.model_name = model_name
        #: Names a request's ``model`` may give.
        self.names = frozenset({model_name, *names})
        self.metrics = Metrics()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clip-model")
        wait = max_wait_ms / 1000
        self.text_batcher = DynamicBatcher(
            encoder.texts,
            self.executor,
            max_batch=max_batch,
            max_wait=wait,
            on_batch=lambda size: self.metrics.batch("text", size),
        )
        self.image_batcher = DynamicBatcher(
            encoder.images,
            self.executor,
            max_batch=max_batch,
            max_wait=wait,
            on_batch=lambda size: self.metrics.batch("image", size),
        )
        self._thumbnail = lru_cache(maxsize=_THUMBNAILS_CACHED)(thumbnail)

    def start(self) -> None:
        """Start the batchers on the running event loop."""
        self.text_batcher.start()
        self.image_batcher.start()

    async def stop(self) -> None:
        """Stop the batchers and the model's thread."""
        await self.text_batcher.stop()
        await self.image_batcher.stop()
        self.executor.shutdown(wait=True)

    async def embed_texts(self, texts: Sequence[str]) -> list[torch.Tensor]:
        """Unit-length embeddings of ``texts``, batched with concurrent requests."""
        return await self.text_batcher.submit(texts)

    async def embed_images(self, images: Sequence[Image.Image]) -> list[torch.Tensor]:
        """Unit-length embeddings of decoded images, preprocessed off the event loop and batched."""
        pixels = await run_in_threadpool(lambda: [self.encoder.pixels(image) for image in images])
        return await self.image_batcher.submit(pixels)

    async def decode(self, urls: Sequence[str]) -> list[Image.Image]:
        """Decode image ``data:`` URLs off the event loop; :class:`InputError` naming the first bad one."""

        def decode_all() -> list[Image.Image]:
            images = []
            for position, url in enumerate(urls):
                try:
                    images.append(decode_data_url(url))
                except InputError as exc:
                    raise InputError(f"input[{position}]: {exc}" if len(urls) > 1 else str(exc)) from None
            return images

        return await run_in_threadpool(decode_all)

    async def search(self, query: torch.Tensor, top_k: int) -> list[SearchHit]:
        """The served rows nearest one unit-length query vector, best first."""
        if self.searcher is None:
            raise InputError("this service searches nothing: start clip serve with --embeddings FILE")
        searcher = self.searcher
        loop = asyncio.get_running_loop()
        hits = await loop.run_in_executor(self.executor, searcher.search, query.unsqueeze(0), top_k)
        return hits[0]

    async def classify(
        self, image: Image.Image, labels: Sequence[str], templates: Sequence[str] | None
    ) -> list[tuple[str, float]]:
        """Zero-shot probabilities of ``image`` among ``labels`` (OpenAI's prompt ensemble), most probable first."""
        prompts_per_label = list(templates) if templates else list(get_templates("simple"))
        for template in prompts_per_label:
            if "{}" not in template:
                raise InputError(f"template {template!r} has no '{{}}' for the label")
        try:
            prompts = [template.format(label) for label in labels for template in prompts_per_label]
        except (IndexError, KeyError, ValueError) as exc:
            raise InputError(f"templates take one {{}} for the label and no other braces ({exc!r})") from None
        text_rows = await self.embed_texts(prompts)
        [image_row] = await self.embed_images([image])
        per_label = torch.stack(text_rows).view(len(labels), len(prompts_per_label), -1)
        classifier = F.normalize(per_label.mean(dim=1), dim=-1)
        probabilities = zero_shot_probabilities(self.encoder.model, image_row.unsqueeze(0), classifier)[0]
        ranked = sorted(zip(labels, probabilities.tolist(), strict=True), key=lambda pair: -pair[1])
        return ranked

    async def thumbnail(self, row: int) -> bytes | None:
        """A JPEG thumbnail of ``row``'s image file, or None when the row is not a listed image or is unreadable."""
        path: Path | None = self.searcher.image_file(row) if self.searcher is not None else None
        if path is None:
            return None
        try:
            return await run_in_threadpool(self._thumbnail, path)
        except InputError:
            return None
