"""The model as the service runs it: its own tokenizer and image preprocessing, unit-length float32 outputs."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image

from clip_core.model import ClipModel
from clip_core.preprocess import ImagePreprocess, get_preprocess
from clip_core.protocols import Tokenizer
from clip_core.tokenizer import get_tokenizer

__all__ = ["Encoder"]


class Encoder:
    """Embeds batches of texts or preprocessed images with ``model`` (in eval mode, without gradients).

    The outputs are ``model.encode_text(tokenizer(texts), normalize=True)`` and
    ``model.encode_image(pixels, normalize=True)`` as float32 rows on the CPU: what :func:`clip_core.embed_texts`
    and :func:`clip_core.embed_images` store. Not thread-safe: call it from one thread.
    """

    def __init__(
        self, model: ClipModel, tokenizer: Tokenizer | None = None, preprocess: ImagePreprocess | None = None
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer or get_tokenizer(model.card)
        self.preprocess = preprocess or get_preprocess(model.card)
        self.device = next((parameter.device for parameter in model.parameters()), torch.device("cpu"))

    @property
    def embed_dim(self) -> int:
        """The width of the embeddings."""
        return self.model.embed_dim

    def pixels(self, image: Image.Image) -> torch.Tensor:
        """One image preprocessed as the card prescribes: ``[3, H, W]`` float32 (thread-safe)."""
        return self.preprocess(image)

    def count_tokens(self, text: str) -> int:
        """The tokens ``text`` takes in the model's context, start and end tokens included."""
        return min(len(self.tokenizer.encode(text)) + 2, self.model.card.tokenizer.context_length)

    def texts(self, texts: Sequence[str]) -> list[torch.Tensor]:
        """Unit-length embeddings of ``texts``, one ``[embed_dim]`` row each."""
        with torch.inference_mode():
            ids = self.tokenizer(list(texts)).to(self.device)
            return list(self.model.encode_text(ids, normalize=True).float().cpu())

    def images(self, pixels: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Unit-length embeddings of preprocessed images ``[3, H, W]``, one ``[embed_dim]`` row each."""
        with torch.inference_mode():
            batch = torch.stack(list(pixels)).to(self.device)
            return list(self.model.encode_image(batch, normalize=True).float().cpu())
