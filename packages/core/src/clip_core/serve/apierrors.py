"""Errors in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``, for every failure.

Bad input is a 4xx answer and never reaches the server's loop: pydantic's validation errors (malformed JSON
included) are 400, :class:`~clip_core.errors.ClipError` from the SDK is 400, unknown routes 404, a body over the
size limit 413; anything unexpected is a 500 that names no internals.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from clip_core.errors import ClipError

__all__ = ["MALFORMED", "APIError", "error_response", "install_error_handlers"]

#: How the API's schema describes its 400 answers.
MALFORMED = "the request is malformed (OpenAI's error shape)"

_log = logging.getLogger("clip_core.serve")
_TYPES = {401: "authentication_error", 403: "permission_error", 404: "not_found_error", 429: "rate_limit_error"}


class APIError(HTTPException):
    """A request the service refuses: a status, a message, and the parameter at fault."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(status_code=status, detail=message)
        self.message = message
        self.param = param
        self.code = code


def error_response(status: int, message: str, param: str | None = None, code: str | None = None) -> JSONResponse:
    """A JSON answer in OpenAI's error shape."""
    kind = _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` in OpenAI's shape."""

    async def api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        if isinstance(exc, APIError):
            return error_response(exc.status_code, exc.message, exc.param, exc.code)
        return error_response(exc.status_code, str(exc.detail))

    async def invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return _validation_response(exc.errors())

    async def clip_error(request: Request, exc: Exception) -> JSONResponse:
        return error_response(400, str(exc))

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        _log.exception("error serving %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(500, "the service failed to answer this request; see its log")

    app.add_exception_handler(HTTPException, api_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(ClipError, clip_error)
    app.add_exception_handler(Exception, unexpected)


def _validation_response(errors: Sequence[Any]) -> JSONResponse:
    first = errors[0] if errors else {}
    location = [str(part) for part in first.get("loc", ()) if part != "body"]
    param = ".".join(location) or None
    if first.get("type") == "json_invalid":
        reason = first.get("ctx", {}).get("error", "")
        return error_response(400, f"the request body is not valid JSON ({reason})", None, "invalid_json")
    message = str(first.get("msg", "invalid request"))
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return error_response(400, f"{param}: {message}{more}" if param else message + more, param, first.get("type"))
