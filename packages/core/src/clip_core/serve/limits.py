"""The request size limit: bodies over ``max_bytes`` get a 413 before they are read whole (ASGI middleware)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clip_core.serve.apierrors import APIError, error_response

__all__ = ["BodyLimit", "BodyTooLarge"]


class BodyTooLarge(APIError):
    """A request body over the limit (a 413 in OpenAI's error shape)."""

    def __init__(self, max_bytes: int) -> None:
        megabytes = max_bytes / 2**20
        super().__init__(413, f"the request body is over the limit of {megabytes:g} MB", None, "request_too_large")


class BodyLimit:
    """Refuse bodies over ``max_bytes``: at once when Content-Length says so, else as soon as the stream passes it."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", ())).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            refused = BodyTooLarge(self.max_bytes)
            response = error_response(413, refused.message, None, refused.code)
            response.headers["connection"] = "close"
            await response(scope, receive, send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, watched_send)
        except BodyTooLarge as exc:
            if started:
                raise
            await error_response(413, exc.message, None, exc.code)(scope, receive, send)
