"""The service's errors: every failure a user can cause becomes ``{"error": {"code", "message"}}`` with a
4xx status and a stable snake_case code (503 when the gallery's server is away, 504 on the request
time limit); anything else is a 500 ``internal`` whose message names no code line (the traceback goes
to the server's log only)."""
from __future__ import annotations

import logging

from facelivt.data.decode import ImageLoadError, ImageTooLargeError
from facelivt.errors import FaceLiVTError, UnavailableError, UnknownNameError
from facelivt.inference.detector import NoFaceError
from facelivt.inference.gallery_store import GalleryMismatchError, GalleryNotFoundError

log = logging.getLogger(__name__)

#: HTTP status -> the code of errors raised by the web framework itself (routing, methods, bodies).
STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                405: "method_not_allowed", 409: "conflict", 413: "payload_too_large", 415: "bad_request",
                422: "validation_error", 503: "unavailable", 504: "timeout"}
#: The header that carries an error response's code to the metrics.
ERROR_HEADER = "x-facelivt-error"


class ApiError(Exception):
    """An error answered as ``status`` with ``code`` and ``message``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = int(status)
        self.code = code
        self.message = message


def body(code: str, message: str) -> dict:
    """The JSON body of an error."""
    return {"error": {"code": code, "message": message}}


def from_library(exc: BaseException, *, gallery: bool = False) -> ApiError:
    """The :class:`ApiError` of an exception raised by the library. ``gallery``: it came from a gallery
    call, where :class:`UnavailableError` means the gallery's server went away (503)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, ImageTooLargeError):
        return ApiError(413, "image_too_large", str(exc))
    if isinstance(exc, ImageLoadError):
        return ApiError(400, "invalid_image", str(exc))
    if isinstance(exc, NoFaceError):
        return ApiError(422, "no_face", str(exc))
    if isinstance(exc, (GalleryNotFoundError, UnknownNameError)):
        return ApiError(404, "not_found", _text(exc))
    if isinstance(exc, GalleryMismatchError):
        return ApiError(409, "gallery_mismatch", str(exc))
    if isinstance(exc, UnavailableError):
        return ApiError(503, "gallery_unavailable" if gallery else "unavailable", str(exc))
    if isinstance(exc, FaceLiVTError):
        return ApiError(400, "bad_request", _text(exc))
    log.error("internal error", exc_info=(type(exc), exc, exc.__traceback__))
    return ApiError(500, "internal", f"internal error ({type(exc).__name__}); the server's log has the details")


def _text(exc: BaseException) -> str:
    """The message of ``exc`` (a KeyError's str() adds quotes)."""
    return str(exc.args[0]) if exc.args else str(exc)
