"""``clip serve``: the embedding and search service (needs ``clip-core[serve]``)."""

from __future__ import annotations

import argparse
import ipaddress
import sys
from typing import Any

from clip_core.cli.models import add_model_arguments, model_from_args
from clip_core.errors import InputError


def _cmd_serve(args: argparse.Namespace) -> None:
    from clip_core.serve import require_serve_extra

    require_serve_extra()
    from clip_core.embedding.file import read_embeddings
    from clip_core.index import check_model
    from clip_core.serve import create_app, run_server
    from clip_core.serve.searchers import EmbeddingsSearcher, Searcher, open_index_searcher

    if args.max_batch < 1:
        raise InputError(f"--max-batch must be at least 1, got {args.max_batch}")
    if args.max_wait_ms < 0:
        raise InputError(f"--max-wait-ms must not be negative, got {args.max_wait_ms}")
    if args.max_request_mb <= 0:
        raise InputError(f"--max-request-mb must be positive, got {args.max_request_mb}")
    if args.threads is not None:
        if args.threads < 1:
            raise InputError(f"--threads must be at least 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    searcher: Searcher | None = None
    embeddings = read_embeddings(args.embeddings) if args.embeddings else None
    if args.index:
        searcher = open_index_searcher(args.index)
    model, source, fingerprint = model_from_args(args)
    if embeddings is not None:
        check_model(embeddings, model, fingerprint)
        searcher = EmbeddingsSearcher(embeddings)
    app = create_app(
        model,
        search=searcher,
        names=[args.model],
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
        max_request_mb=args.max_request_mb,
    )
    if not _is_loopback(args.host):
        print(
            f"clip serve: listening on {args.host}, beyond this machine; the service has no authentication",
            file=sys.stderr,
        )
    searching = f", searching {searcher.name}" if searcher is not None else ""
    print(f"clip serve: {source}{searching} on http://{args.host}:{args.port}/", file=sys.stderr, flush=True)
    run_server(app, args.host, args.port, log_level=args.log_level, access_log=args.log_level == "debug")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def add_parsers(commands: Any) -> None:
    """``clip serve``."""
    serve = commands.add_parser(
        "serve",
        help="serve embeddings, search and zero-shot classification over HTTP, with a search page",
        description="Run an HTTP service (FastAPI on uvicorn; pip install 'clip-core[serve]'): POST /v1/embeddings "
        '(OpenAI\'s shape; images as data: URLs with "modality": "image"), /v1/search over --embeddings, '
        "/v1/classify (zero-shot), GET /health, /metrics (Prometheus), /docs (OpenAPI) and a search page at /. "
        "Concurrent requests are embedded together, up to --max-batch inputs gathered for at most --max-wait-ms. "
        "Listens on 127.0.0.1 unless --host says otherwise; SIGTERM or Ctrl-C finish the requests in flight.",
    )
    add_model_arguments(serve)
    searched = serve.add_mutually_exclusive_group()
    searched.add_argument("--embeddings", metavar="E", help="an embeddings file from clip embed to search")
    searched.add_argument("--index", metavar="PATH", help="an index from clip index build to search")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=8000, help="port (8000)")
    serve.add_argument("--max-batch", dest="max_batch", type=int, default=64, help="most inputs per forward pass (64)")
    serve.add_argument(
        "--max-wait-ms",
        dest="max_wait_ms",
        type=float,
        default=5.0,
        help="how long a batch waits for more inputs after its first, in milliseconds (5)",
    )
    serve.add_argument(
        "--max-request-mb",
        dest="max_request_mb",
        type=float,
        default=20.0,
        help="largest request body accepted, in megabytes (20)",
    )
    serve.add_argument(
        "--threads",
        type=int,
        help="CPU threads for the model's computations (default: torch's, one per core); on a busy machine fewer "
        "threads can be faster",
    )
    serve.add_argument(
        "--log-level",
        dest="log_level",
        choices=["critical", "error", "warning", "info", "debug"],
        default="info",
        help="uvicorn's log level (info; debug also logs each request)",
    )
    serve.set_defaults(run=_cmd_serve)
