"""The JSON API: ``/v1/embeddings`` (OpenAI's shape), ``/v1/search`` and ``/v1/classify``."""

from __future__ import annotations

import base64

import torch
from fastapi import APIRouter, Request

from clip_core.errors import InputError
from clip_core.serve.apierrors import MALFORMED, APIError
from clip_core.serve.schemas import (
    ClassifyRequest,
    ClassifyResponse,
    Embedding,
    EmbeddingRequest,
    EmbeddingResponse,
    ErrorResponse,
    LabelProbability,
    SearchRequest,
    SearchResponse,
    SearchResult,
    Usage,
)
from clip_core.serve.service import Service

__all__ = ["router"]

_ERRORS: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorResponse, "description": MALFORMED},
    413: {"model": ErrorResponse, "description": "the request body is over the size limit"},
}

router = APIRouter(prefix="/v1", responses=_ERRORS)


def _not_found(when: str) -> dict[int | str, dict[str, object]]:
    return {404: {"model": ErrorResponse, "description": when}}


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


@router.post(
    "/embeddings",
    response_model=EmbeddingResponse,
    tags=["embeddings"],
    responses=_not_found("the request names another model than the one served"),
)
async def create_embeddings(body: EmbeddingRequest, request: Request) -> EmbeddingResponse:
    """Unit-length embeddings of texts or images (data: URLs, with ``"modality": "image"``), in input order.

    Equal to the model's ``encode_text`` / ``encode_image`` with ``normalize=True`` on the card's tokenizer and
    preprocessing. Inputs of concurrent requests share forward passes.
    """
    service = _service(request)
    _check_model(service, body.model)
    inputs = [body.input] if isinstance(body.input, str) else body.input
    if not inputs:
        raise APIError(400, "input must not be empty", "input", "empty_input")
    for position, item in enumerate(inputs):
        if not item:
            raise APIError(400, f"input[{position}] is an empty string", "input", "empty_input")
    if body.modality == "text":
        looks_like_image = next((p for p, item in enumerate(inputs) if item.startswith("data:image/")), None)
        if looks_like_image is not None:
            raise APIError(
                400,
                f'input[{looks_like_image}] is an image data: URL; send images with "modality": "image"',
                "modality",
                "wrong_modality",
            )
        rows = await service.embed_texts(inputs)
        tokens = sum(service.encoder.count_tokens(text) for text in inputs)
    else:
        try:
            images = await service.decode(inputs)
        except InputError as exc:
            raise APIError(400, str(exc), "input", "invalid_image") from None
        rows = await service.embed_images(images)
        tokens = 0
    data = [Embedding(index=i, embedding=_encode(row, body.encoding_format)) for i, row in enumerate(rows)]
    usage = Usage(prompt_tokens=tokens, total_tokens=tokens)
    return EmbeddingResponse(data=data, model=service.model_name, usage=usage)


@router.post(
    "/search",
    response_model=SearchResponse,
    tags=["search"],
    responses=_not_found("the service was started without embeddings or an index to search"),
)
async def search(body: SearchRequest, request: Request) -> SearchResponse:
    """The rows of the served embeddings nearest a text or an image query, best first, with their sources."""
    service = _service(request)
    if (body.text is None) == (body.image is None):
        raise APIError(400, "give exactly one query: text or image", "text", "invalid_query")
    if service.searcher is None:
        raise APIError(404, "this service searches nothing: start clip serve with --embeddings FILE", None, "no_index")
    if body.text is not None:
        [query] = await service.embed_texts([body.text])
    else:
        assert body.image is not None
        try:
            images = await service.decode([body.image])
        except InputError as exc:
            raise APIError(400, str(exc), "image", "invalid_image") from None
        [query] = await service.embed_images(images)
    hits = await service.search(query, body.top_k)
    data = [SearchResult(row=hit.row, score=hit.score, source=hit.source) for hit in hits]
    return SearchResponse(data=data, model=service.model_name)


@router.post("/classify", response_model=ClassifyResponse, tags=["classify"])
async def classify(body: ClassifyRequest, request: Request) -> ClassifyResponse:
    """Zero-shot probabilities of an image among labels: each label in every template, the prompts' embeddings
    averaged per label (OpenAI's prompt ensemble); softmax over the labels, or a sigmoid per label for models with a
    logit bias. Most probable first."""
    service = _service(request)
    if not all(body.labels):
        raise APIError(400, "labels must not be empty strings", "labels", "empty_input")
    try:
        [image] = await service.decode([body.image])
    except InputError as exc:
        raise APIError(400, str(exc), "image", "invalid_image") from None
    try:
        ranked = await service.classify(image, body.labels, body.templates)
    except InputError as exc:
        raise APIError(400, str(exc), "templates", "invalid_template") from None
    data = [LabelProbability(label=label, probability=p) for label, p in ranked]
    return ClassifyResponse(data=data, model=service.model_name)


def _check_model(service: Service, model: str | None) -> None:
    if model is not None and model not in service.names:
        raise APIError(
            404,
            f"model {model!r} is not served here; this service runs {service.model_name!r}",
            "model",
            "model_not_found",
        )


def _encode(row: torch.Tensor, encoding: str) -> list[float] | str:
    if encoding == "base64":
        return base64.b64encode(row.to(torch.float32).numpy().astype("<f4").tobytes()).decode("ascii")
    values: list[float] = row.tolist()
    return values
