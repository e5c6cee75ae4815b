"""The service's limits: request body size (counted while it is read: 413 as soon as it passes the
limit, whatever Content-Length says), request time (504), and the names a request may use."""
from __future__ import annotations

import asyncio
import json
import logging
import unicodedata

from facelivt.errors import InvalidInputError
from facelivt.inference.gallery_set import check_gallery_name
from facelivt.serve.errors import ERROR_HEADER, ApiError, body

log = logging.getLogger(__name__)

#: The longest identity name.
MAX_IDENTITY_NAME = 200


def check_identity_name(name: object) -> str:
    """``name`` if it is a usable identity name (1..200 characters, no control characters), else a 400
    ``invalid_name``."""
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_IDENTITY_NAME or not name.strip():
        raise ApiError(400, "invalid_name", f"identity names have 1 to {MAX_IDENTITY_NAME} characters, not only spaces")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn") for c in name):
        raise ApiError(400, "invalid_name", f"identity name {name!r} holds control or unassigned characters")
    return name


def gallery_name(name: str) -> str:
    """``name`` if it is a valid gallery name, else a 400 ``invalid_name``."""
    try:
        return check_gallery_name(name)
    except InvalidInputError as exc:
        raise ApiError(400, "invalid_name", str(exc)) from None


async def send_error(send, status: int, code: str, message: str) -> None:
    """Answer an ASGI request with an error body."""
    payload = json.dumps(body(code, message)).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                            (ERROR_HEADER.encode(), code.encode())]})
    await send({"type": "http.response.body", "body": payload})


class LimitsMiddleware:
    """ASGI middleware: bodies above ``max_bytes`` get 413 ``payload_too_large`` (refused by their
    Content-Length up front, or when the bytes read pass the limit: the app then sees the client gone),
    and a request still running after ``timeout`` seconds gets 504 ``timeout``."""

    def __init__(self, app, *, max_bytes: int, timeout: float) -> None:
        self.app = app
        self.max_bytes = int(max_bytes)
        self.timeout = float(timeout)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_big = f"the request body is larger than the limit of {self.max_bytes} bytes (--max-upload-mb)"
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await send_error(send, 413, "payload_too_large", too_big)
            return
        state = {"read": 0, "started": False, "answered": False}

        async def limited_receive():
            if state["answered"]:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                state["read"] += len(message.get("body", b""))
                if state["read"] > self.max_bytes:
                    await answer(413, "payload_too_large", too_big)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            if state["answered"]:
                return  # the limit answered already: what the app sends after is dropped
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        async def answer(status: int, code: str, message: str) -> None:
            if not state["started"] and not state["answered"]:
                state["answered"] = True
                await send_error(send, status, code, message)

        try:
            await asyncio.wait_for(self.app(scope, limited_receive, guarded_send), self.timeout)
        except asyncio.TimeoutError:
            log.warning("%s %s: no answer within %.1f s", scope.get("method"), scope.get("path"), self.timeout)
            await answer(504, "timeout", f"the request took longer than the limit of {self.timeout:g} s (--request-timeout)")
