"""The application factory: routes, middleware and the service's life cycle."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence, Sized
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, Query, UploadFile
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clip_core.embedding.file import Embeddings
from clip_core.errors import InputError
from clip_core.model import ClipModel
from clip_core.preprocess import ImagePreprocess
from clip_core.protocols import Tokenizer
from clip_core.serve.api import router
from clip_core.serve.apidocs import answer_errors_as_served, render_api_docs
from clip_core.serve.apierrors import APIError, install_error_handlers
from clip_core.serve.encoder import Encoder
from clip_core.serve.images import decode_image
from clip_core.serve.limits import BodyLimit
from clip_core.serve.page import CONTENT_SECURITY_POLICY, PageState, render_page
from clip_core.serve.schemas import ErrorResponse, Health
from clip_core.serve.searchers import EmbeddingsSearcher, Searcher
from clip_core.serve.service import Service

__all__ = ["create_app"]

_PAGE_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


def create_app(
    model: ClipModel,
    *,
    search: Searcher | Embeddings | None = None,
    tokenizer: Tokenizer | None = None,
    preprocess: ImagePreprocess | None = None,
    model_name: str | None = None,
    names: Sequence[str] = (),
    max_batch: int = 64,
    max_wait_ms: float = 5.0,
    max_request_mb: float = 20.0,
) -> FastAPI:
    """The service for ``model`` as a FastAPI application; run it with :func:`clip_core.serve.run_server`.

    ``search``: what ``/v1/search`` and the page search, an embeddings file read by
    :func:`clip_core.read_embeddings` (exact search) or any :class:`~clip_core.serve.searchers.Searcher`.
    ``tokenizer`` and ``preprocess`` default to the card's. Responses name the model ``model_name`` (default: its
    card's name); a request's ``model`` may be that or one of ``names``. Up to ``max_batch`` inputs of concurrent
    requests of one modality are embedded together, gathered for at most ``max_wait_ms`` after the first; request
    bodies over ``max_request_mb`` are refused (413).
    """
    if max_request_mb <= 0:
        raise InputError(f"max_request_mb must be positive, got {max_request_mb}")
    searcher = EmbeddingsSearcher(search) if isinstance(search, Embeddings) else search
    service = Service(
        Encoder(model, tokenizer, preprocess),
        searcher,
        model_name=model_name or model.card.name,
        names=names,
        max_batch=max_batch,
        max_wait_ms=max_wait_ms,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.start()
        yield
        await service.stop()

    app = FastAPI(
        title="clip serve",
        description=f"Embeddings, search and zero-shot classification with {service.model_name}.",
        lifespan=lifespan,
        docs_url="/swagger",  # Swagger UI loads its scripts from a CDN; /docs is rendered here
        redoc_url=None,
    )
    app.state.service = service

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            app.openapi_schema = answer_errors_as_served(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    install_error_handlers(app)
    app.include_router(router)
    _add_page_routes(app, service)
    app.add_middleware(BodyLimit, max_bytes=int(max_request_mb * 2**20))
    app.add_middleware(_Timing, service=service)
    return app


def _add_page_routes(app: FastAPI, service: Service) -> None:
    searched = service.searcher.name if service.searcher is not None else None
    rows = len(service.searcher) if isinstance(service.searcher, Sized) else None

    def state(**fields: Any) -> PageState:
        return PageState(model=service.model_name, searched=searched, rows=rows, **fields)

    def has_image(row: int) -> bool:
        return service.searcher is not None and service.searcher.image_file(row) is not None

    def page(content: PageState, status: int = 200) -> HTMLResponse:
        return HTMLResponse(render_page(content, has_image), status_code=status, headers=_PAGE_HEADERS)

    @app.get("/", response_class=HTMLResponse, tags=["page"])
    async def search_page(
        q: Annotated[str, Query(max_length=2000)] = "", k: Annotated[int, Query(ge=1, le=200)] = 24
    ) -> HTMLResponse:
        """The search page; ``?q=TEXT`` shows the results of a text query (no JavaScript needed)."""
        query = q.strip()
        if not query or service.searcher is None:
            return page(state(query=query, top_k=k))
        [vector] = await service.embed_texts([query])
        hits = await service.search(vector, k)
        return page(state(query=query, top_k=k, hits=hits, query_label=f"“{query}”"))

    @app.post("/", response_class=HTMLResponse, tags=["page"])
    async def search_page_by_image(
        image: Annotated[UploadFile | None, File()] = None, k: Annotated[int, Form(ge=1, le=200)] = 24
    ) -> HTMLResponse:
        """The search page with the results of an uploaded image."""
        content = await image.read() if image is not None else b""
        if service.searcher is None:
            return page(state(top_k=k))
        if not content:
            return page(state(top_k=k, message="choose an image file to search with"), 400)
        try:
            decoded = decode_image(content)
        except InputError as exc:
            return page(state(top_k=k, message=f"{image.filename if image else 'upload'}: {exc}"), 400)
        [vector] = await service.embed_images([decoded])
        hits = await service.search(vector, k)
        label = f"the image {image.filename}" if image is not None and image.filename else "the uploaded image"
        return page(state(top_k=k, hits=hits, query_label=label))

    @app.get(
        "/thumbnails/{row}",
        tags=["page"],
        responses={
            200: {"content": {"image/jpeg": {}}},
            404: {"model": ErrorResponse, "description": "the row is not an image file of the served embeddings"},
        },
    )
    async def thumbnail(row: int) -> Response:
        """A JPEG thumbnail of a row's image file: only files listed in the served embeddings are ever read."""
        picture = await service.thumbnail(row)
        if picture is None:
            raise APIError(404, f"row {row} has no image here", "row", "not_found")
        return Response(picture, media_type="image/jpeg", headers={"cache-control": "max-age=3600"})

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    async def api_docs() -> HTMLResponse:
        """The API reference, from the OpenAPI schema, rendered on the server (no network, no script needed)."""
        return HTMLResponse(render_api_docs(app.openapi()), headers=_PAGE_HEADERS)

    @app.get("/health", response_model=Health, tags=["service"])
    async def health() -> Health:
        """The service is up: its model, embedding width and the rows it searches."""
        return Health(model=service.model_name, embed_dim=service.encoder.embed_dim, rows=rows)

    @app.get("/metrics", response_class=PlainTextResponse, tags=["service"])
    async def metrics() -> PlainTextResponse:
        """Prometheus metrics: requests by route and status, latencies, batch sizes per modality."""
        waiting = {"text": service.text_batcher.waiting, "image": service.image_batcher.waiting}
        return PlainTextResponse(service.metrics.render(waiting), media_type="text/plain; version=0.0.4")


class _Timing:
    """Records each request's route, status and latency in the service's metrics."""

    def __init__(self, app: ASGIApp, service: Service) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def watched_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watched_send)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.service.metrics.request(route, status, time.perf_counter() - start)
