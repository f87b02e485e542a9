"""``clip serve``: an embedding, search and zero-shot service over one model, with dynamic batching.

The service is a FastAPI application on uvicorn (the ``clip-core[serve]`` extra, imported only when used):

- ``POST /v1/embeddings`` in OpenAI's shape (texts, or images as ``data:`` URLs with ``"modality": "image"``),
- ``POST /v1/search`` over an embeddings file written by ``clip embed`` (or an index),
- ``POST /v1/classify``: zero-shot probabilities of an image among labels,
- ``GET /health``, ``GET /metrics`` (Prometheus text), ``GET /docs`` (the API reference, rendered here from the
  OpenAPI schema at ``/openapi.json``; Swagger UI at ``/swagger``),
- ``GET /``: a search page rendered on the server, with thumbnails of the matching files.

Concurrent requests are gathered per modality into one forward pass (:mod:`clip_core.serve.batcher`), run on a
single worker thread off the event loop. Modules: ``app`` (the factory and the page's routes), ``api`` (the JSON
routes), ``service`` (the state the routes share), ``schemas`` (request and response models), ``batcher``,
``encoder`` (the model's own preprocessing and tokenizer), ``searchers`` (what ``/v1/search`` searches), ``images``
(``data:`` URLs and thumbnails), ``page`` (the search page), ``apidocs`` (``/docs``), ``metrics``, ``apierrors``
(OpenAI's error shape), ``limits`` (the request size limit), ``server`` (uvicorn).
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

from clip_core.errors import ClipError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from fastapi import FastAPI

    from clip_core.embedding.file import Embeddings
    from clip_core.model import ClipModel
    from clip_core.preprocess import ImagePreprocess
    from clip_core.protocols import Tokenizer
    from clip_core.serve.searchers import Searcher

__all__ = ["create_app", "require_serve_extra", "run_server"]

#: The modules the ``serve`` extra provides (import name -> distribution).
SERVE_MODULES = {"fastapi": "fastapi", "uvicorn": "uvicorn", "multipart": "python-multipart"}


def require_serve_extra() -> None:
    """Raise a :class:`ClipError` naming the ``clip-core[serve]`` extra when one of its packages is missing."""
    missing = [name for module, name in SERVE_MODULES.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise ClipError(f"serving needs {', '.join(missing)}, which are not installed: pip install 'clip-core[serve]'")


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
    """The service for ``model`` as a FastAPI application; run it with :func:`run_server`.

    ``search``: what ``/v1/search`` and the page search, an embeddings file read by
    :func:`clip_core.read_embeddings` (exact search) or a :class:`~clip_core.serve.searchers.Searcher` (e.g. an
    index). ``tokenizer`` and ``preprocess`` default to the card's. Responses name the model ``model_name``
    (default: its card's name); a request's ``model`` may be that or one of ``names``. Up to ``max_batch`` inputs
    of concurrent requests of one modality are embedded in one forward pass, gathered for at most ``max_wait_ms``
    after the first; request bodies over ``max_request_mb`` are refused (413). Needs ``clip-core[serve]``.
    """
    require_serve_extra()
    from clip_core.serve.app import create_app as create

    return create(
        model,
        search=search,
        tokenizer=tokenizer,
        preprocess=preprocess,
        model_name=model_name,
        names=names,
        max_batch=max_batch,
        max_wait_ms=max_wait_ms,
        max_request_mb=max_request_mb,
    )


def run_server(
    app: FastAPI,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    log_level: str = "info",
    access_log: bool = True,
    graceful_timeout: int = 30,
) -> None:
    """Serve ``app`` with uvicorn until SIGINT or SIGTERM, which let the requests in flight finish first (for at
    most ``graceful_timeout`` seconds). Binds to loopback unless ``host`` says otherwise."""
    require_serve_extra()
    from clip_core.serve.server import run_server as run

    run(app, host, port, log_level=log_level, access_log=access_log, graceful_timeout=graceful_timeout)
