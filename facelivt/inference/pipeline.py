"""The photo pipeline's first stage: read (decode, and detect and align) photos on a few worker threads,
ahead of the network, in input order, with memory bounded.

:func:`prepare_in_order` maps a function over an iterable on ``workers`` threads and yields
:class:`Prepared` results in input order. It takes items from the iterable only as room frees up: at
most ``workers * AHEAD`` items are read ahead of the consumer (decoded images alive at once), however
long the input (a generator over a 100,000-photo folder is never listed). A failure of one item
(an unreadable photo, no face) is its result, not the end of the run: the caller reports it.

Decoding (OpenCV, Pillow) and the detector's convolutions release the GIL, so the threads overlap the
recognizer's batched forward passes in the calling thread. ``workers=0`` runs everything in the
calling thread, one item at a time: the photo-by-photo path, whose results the threaded one equals.
"""
from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Generic, Iterable, Iterator, TypeVar

from facelivt.cpu import check_threads

T = TypeVar("T")
R = TypeVar("R")

#: Default worker threads of the photo commands and of :class:`~facelivt.inference.FaceRecognizer`.
DEFAULT_WORKERS = 2
#: Items each worker may have read ahead of the consumer.
AHEAD = 2
#: The errors that make one photo unusable (ImageLoadError, NoFaceError, SeveralFacesError, a missing
#: or unreadable file); anything else (a bug, KeyboardInterrupt) ends the run.
PHOTO_ERRORS = (ValueError, OSError)


@dataclass(frozen=True)
class Prepared(Generic[R]):
    """The result for input ``index``: ``value``, or the ``error`` that made the item unusable."""

    index: int
    value: R | None = None
    error: Exception | None = None


def check_workers(workers: int, option: str = "workers") -> int:
    """``workers`` when it is a thread count from 0 to :func:`facelivt.cpu.max_threads`, else
    :class:`~facelivt.errors.InvalidInputError` naming ``option``."""
    return check_threads(workers, option, minimum=0)


def lookahead(workers: int) -> int:
    """How many items :func:`prepare_in_order` holds at most (read but not yet consumed)."""
    return max(1, workers * AHEAD)


def _run(fn: Callable[[T], R], index: int, item: T) -> Prepared[R]:
    try:
        return Prepared(index, fn(item))
    except PHOTO_ERRORS as exc:
        return Prepared(index, error=exc)


def prepare_in_order(fn: Callable[[T], R], items: Iterable[T], workers: int = DEFAULT_WORKERS) -> Iterator[Prepared[R]]:
    """``fn`` of every item, in input order, computed on ``workers`` threads (0: in the calling thread)
    at most :func:`lookahead` items ahead of the consumer."""
    check_workers(workers)
    if workers == 0:
        for index, item in enumerate(items):
            yield _run(fn, index, item)
        return
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="facelivt-photos")
    inflight: deque[Future] = deque()
    try:
        for index, item in enumerate(items):
            if len(inflight) >= lookahead(workers):
                yield inflight.popleft().result()
            inflight.append(pool.submit(_run, fn, index, item))
        while inflight:
            yield inflight.popleft().result()
    finally:
        for future in inflight:  # a consumer that stops early: no more work is started
            future.cancel()
        pool.shutdown(wait=True)
