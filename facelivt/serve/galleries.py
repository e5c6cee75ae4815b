"""The service's galleries: a :class:`~facelivt.inference.gallery_set.GallerySet` whose calls run on
threads, one at a time per gallery (a lock of each), with the library's errors turned into the API's
(an :class:`~facelivt.errors.UnavailableError` of a gallery call is a 503 ``gallery_unavailable``)."""
from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

from facelivt.inference.gallery import Gallery
from facelivt.inference.gallery_set import GallerySet
from facelivt.serve.errors import ApiError, from_library

T = TypeVar("T")


class Galleries:
    """The galleries under ``root`` (a folder or a PostgreSQL URL) for embeddings of ``dim`` described by
    ``metadata``."""

    def __init__(self, root: str, *, dim: int, metadata: dict) -> None:
        self.set = GallerySet(root, dim=dim, metadata=metadata)
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._pool = ThreadPoolExecutor(4, thread_name_prefix="facelivt-gallery")

    @property
    def kind(self) -> str:
        return self.set.kind

    def _lock(self, name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(name, threading.Lock())

    async def call(self, fn: Callable[[], T]) -> T:
        """``fn()`` on a gallery thread, its errors as :class:`ApiError`."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn)
        except Exception as exc:  # noqa: BLE001 - every error becomes an API error
            raise from_library(exc, gallery=True) from None

    async def with_gallery(self, name: str, fn: Callable[[Gallery], T], *, create: bool = False) -> T:
        """``fn(gallery)`` for gallery ``name`` (made by its first enrolment with ``create``), holding its lock."""
        def locked() -> T:
            with self._lock(name):
                return fn(self.set.open(name, create=create))
        return await self.call(locked)

    async def reachable(self) -> bool:
        """Whether the galleries can be listed now."""
        try:
            await self.call(self.set.names)
            return True
        except ApiError:
            return False

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.set.close()
