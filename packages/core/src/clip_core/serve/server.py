"""Running the application with uvicorn: loopback by default, graceful shutdown on SIGINT and SIGTERM."""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI

__all__ = ["run_server"]


def run_server(
    app: FastAPI,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    log_level: str = "info",
    access_log: bool = True,
    graceful_timeout: int = 30,
) -> None:
    """Serve ``app`` until SIGINT or SIGTERM.

    On either signal uvicorn stops accepting connections, lets the requests in flight finish (for at most
    ``graceful_timeout`` seconds), then the application stops its batchers and model thread.
    """
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=access_log,
        timeout_graceful_shutdown=graceful_timeout,
    )
