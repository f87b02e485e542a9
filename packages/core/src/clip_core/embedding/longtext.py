"""Texts longer than the model's context: truncated (open_clip's behaviour), refused, or embedded in chunks.

CLIP's text tower reads ``context_length`` ids (77), start and end tokens included. :func:`encode_texts` embeds a
batch of texts under one of three policies (``long_text``):

- ``"truncate"`` (the default): the tokenizer keeps the first ``context_length - 2`` ids and the end token, as
  open_clip does silently;
- ``"error"``: a text too long raises :class:`InputError` naming it and its length in tokens (OpenAI's ``clip``
  raises too);
- ``"chunk"``: a text too long is cut into consecutive pieces of ``context_length - 2`` ids, each embedded as a text
  of its own (start token, piece, end token), and its embedding is the mean of the pieces' unit-length embeddings,
  normalised again (without ``normalize``: the plain mean of the pieces' embeddings). A text that fits is one piece,
  so its embedding is exactly its plain embedding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, get_args

import torch
import torch.nn.functional as F

from clip_core.errors import InputError
from clip_core.protocols import Tokenizer

if TYPE_CHECKING:
    from clip_core.model import ClipModel

__all__ = ["LONG_TEXT_POLICIES", "LongText", "encode_texts", "text_pieces"]

LongText = Literal["truncate", "error", "chunk"]
#: The policies :func:`encode_texts` takes, for command-line choices.
LONG_TEXT_POLICIES: tuple[str, ...] = get_args(LongText)


def encode_texts(
    model: ClipModel,
    texts: Sequence[str],
    tokenizer: Tokenizer,
    long_text: LongText = "truncate",
    normalize: bool = True,
) -> torch.Tensor:
    """Embeddings ``[len(texts), embed_dim]`` (float32, on the model's device) of ``texts`` under the ``long_text``
    policy (see the module's docstring), unit length if ``normalize``."""
    if long_text not in LONG_TEXT_POLICIES:
        raise InputError(f"long_text must be one of {', '.join(LONG_TEXT_POLICIES)}, got {long_text!r}")
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    if long_text != "chunk":
        ids = tokenizer(list(texts)) if long_text == "truncate" else tokenizer(list(texts), truncate="error")
        features = model.encode_text(ids.to(device)).float()
        return F.normalize(features, dim=-1) if normalize else features
    rows, owners = text_pieces(texts, tokenizer)
    features = model.encode_text(rows.to(device)).float()
    if normalize:
        features = F.normalize(features, dim=-1)
    index = torch.as_tensor(owners, device=features.device)
    sums = features.new_zeros(len(texts), features.shape[1]).index_add_(0, index, features)
    counts = torch.bincount(index, minlength=len(texts)).to(features.dtype)
    mean = sums / counts[:, None]
    return F.normalize(mean, dim=-1) if normalize else mean


def text_pieces(texts: Sequence[str], tokenizer: Tokenizer) -> tuple[torch.Tensor, list[int]]:
    """Each text as rows of ids no longer than the context: one row for a text that fits (the tokenizer's own row),
    consecutive pieces of ``context_length - 2`` ids for a longer one; and, per row, the text it comes from.

    Rows follow the tokenizer's layout (start token, ids, end token, zero padding), the start and end tokens being
    those the tokenizer gives an empty text.
    """
    batch = list(texts)
    plain = tokenizer(batch)
    length = plain.shape[1]
    if length < 3:
        raise InputError(f"chunking needs a context of at least 3 tokens, the tokenizer's is {length}")
    start, end = (int(i) for i in tokenizer([""])[0, :2])
    room = length - 2
    rows: list[torch.Tensor] = []
    owners: list[int] = []
    for position, row in enumerate(plain):
        if int(row[-1]) == 0:  # the end token is not last: the text fits (it is not truncated)
            rows.append(row)
            owners.append(position)
            continue
        ids = tokenizer.encode(batch[position])
        for first in range(0, max(len(ids), 1), room):
            piece = ids[first : first + room]
            chunk = torch.zeros(length, dtype=plain.dtype)
            chunk[: len(piece) + 2] = torch.tensor([start, *piece, end], dtype=plain.dtype)
            rows.append(chunk)
            owners.append(position)
    return torch.stack(rows), owners
