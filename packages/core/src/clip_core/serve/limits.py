"""The request size limit: bodies over ``max_bytes`` get a 413 without being kept (ASGI middleware).

The body of a refused request is read and dropped, up to :data:`DRAIN_FACTOR` times the limit, before the 413 is
sent: a client that writes its whole body before reading (Python's ``http.client`` and ``urllib``, among others)
would otherwise see the connection reset instead of the answer. A larger body is answered at once and the connection
closed.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clip_core.serve.apierrors import APIError, error_response

__all__ = ["DRAIN_FACTOR", "BodyLimit", "BodyTooLarge"]

#: How much of a refused body is read and dropped, as a multiple of the limit, so that its sender gets the 413.
DRAIN_FACTOR = 4


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
            drained = int(declared) <= DRAIN_FACTOR * self.max_bytes and await self._drain(receive)
            await self._refuse(scope, receive, send, drained)
            return
        received = 0
        started = ended = False

        async def limited_receive() -> Message:
            nonlocal received, ended
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                ended = not message.get("more_body", False)
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, watched_send)
        except BodyTooLarge:
            if started:
                raise
            drained = ended or await self._drain(receive, received)  # after the last part, receive() would wait
            await self._refuse(scope, receive, send, drained)

    async def _drain(self, receive: Receive, received: int = 0) -> bool:
        """Read and drop the rest of the body while it stays within :data:`DRAIN_FACTOR` times the limit; whether
        it ended there."""
        while received <= DRAIN_FACTOR * self.max_bytes:
            message = await receive()
            if message["type"] != "http.request":
                return False
            received += len(message.get("body", b""))
            if not message.get("more_body", False):
                return received <= DRAIN_FACTOR * self.max_bytes
        return False

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, drained: bool) -> None:
        """The 413; the connection is closed unless the whole body was read."""
        refused = BodyTooLarge(self.max_bytes)
        response = error_response(413, refused.message, None, refused.code)
        if not drained:
            response.headers["connection"] = "close"
        await response(scope, receive, send)
