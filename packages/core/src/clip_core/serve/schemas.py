"""The JSON the service reads and writes: OpenAI's embeddings shape, search, zero-shot classification, errors."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ClassifyRequest",
    "ClassifyResponse",
    "Embedding",
    "EmbeddingRequest",
    "EmbeddingResponse",
    "ErrorBody",
    "ErrorResponse",
    "Health",
    "LabelProbability",
    "SearchRequest",
    "SearchResponse",
    "SearchResult",
    "Usage",
]

_DATA_URL = "an image as a data: URL, data:image/png;base64,..."


class EmbeddingRequest(BaseModel):
    """``POST /v1/embeddings``: OpenAI's request, plus ``modality`` for images (as Infinity does)."""

    model_config = ConfigDict(extra="ignore")

    input: str | list[str] = Field(description="a text or a list of texts; with modality 'image', image data: URLs")
    model: str | None = Field(default=None, description="the served model's name (optional)")
    modality: Literal["text", "image"] = Field(default="text", description="what the inputs are")
    encoding_format: Literal["float", "base64"] = Field(
        default="float", description="float: lists of numbers; base64: little-endian float32 bytes, base64 encoded"
    )


class Embedding(BaseModel):
    """One input's unit-length embedding."""

    object: Literal["embedding"] = "embedding"
    index: int = Field(description="the input's position in the request")
    embedding: list[float] | str = Field(description="the vector, or its float32 bytes in base64")


class Usage(BaseModel):
    """Tokens read (texts: start and end tokens included; images count none)."""

    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(BaseModel):
    """The embeddings of a request's inputs, in input order."""

    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: Usage


class SearchRequest(BaseModel):
    """``POST /v1/search``: one query, a text or an image, against the served embeddings."""

    model_config = ConfigDict(extra="forbid")

    text: str | None = Field(default=None, description="a text query", min_length=1)
    image: str | None = Field(default=None, description=f"an image query: {_DATA_URL}", min_length=1)
    top_k: int = Field(default=10, ge=1, le=1000, description="how many rows to return")


class SearchResult(BaseModel):
    """A row of the served embeddings, its cosine similarity to the query and its source (file or text)."""

    row: int
    score: float
    source: str


class SearchResponse(BaseModel):
    """The best rows, best first."""

    object: Literal["list"] = "list"
    data: list[SearchResult]
    model: str


class ClassifyRequest(BaseModel):
    """``POST /v1/classify``: zero-shot classification of one image among labels."""

    model_config = ConfigDict(extra="forbid")

    image: str = Field(description=_DATA_URL, min_length=1)
    labels: list[str] = Field(description="the class names", min_length=1, max_length=1000)
    templates: list[str] | None = Field(
        default=None,
        description="prompt templates with {} for the label (default: OpenAI's 7 'simple' templates)",
        min_length=1,
        max_length=100,
    )


class LabelProbability(BaseModel):
    """A label and its probability."""

    label: str
    probability: float


class ClassifyResponse(BaseModel):
    """The labels, most probable first (softmax over the labels; sigmoid per label for models with a logit bias)."""

    object: Literal["list"] = "list"
    data: list[LabelProbability]
    model: str


class Health(BaseModel):
    """``GET /health``."""

    status: Literal["ok"] = "ok"
    model: str
    embed_dim: int
    rows: int | None = Field(description="rows the search serves (None: no search)")


class ErrorBody(BaseModel):
    """What went wrong, as OpenAI's API reports it."""

    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    """Every 4xx and 5xx answer."""

    error: ErrorBody
