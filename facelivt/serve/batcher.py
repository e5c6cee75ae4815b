"""Micro-batching: the face crops of concurrent requests go through the model together.

Each request :meth:`MicroBatcher.submit`\\ s its crops and waits on a future. One inference thread takes
the first waiting request, then gathers more until ``max_batch`` crops are together, or the requests it
expects are all there, or ``max_wait_ms`` has passed, runs the model once on all of them and hands each
request its rows. It expects as many requests as were in flight when the last call ended: those it
answered (their clients send the next one) and those waiting in the queue. So an idle server, whose
last call held one request and left none waiting, does not wait at all, and a server with 8 busy
clients goes as soon as their 8 requests are in, while with 32 clients the batch does not settle at
the half that queued during the last call. The wait counts from when the thread is free again (or
from the first crop's arrival, if later), so the clients just answered have that long to come back.
One thread runs the model: the network's own threads use the cores, and two model calls at once
would only fight over them. ``max_batch=1`` turns batching off (one request's crops at a time).
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

log = logging.getLogger(__name__)


@dataclass
class _Item:
    crops: np.ndarray
    future: Future = field(default_factory=Future)
    queued: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class BatchStats:
    """One model call: how many ``crops`` from how many ``requests``, and the ``seconds`` it took."""

    crops: int
    requests: int
    seconds: float


class MicroBatcher:
    """Runs ``model(crops: N x H x W x 3 uint8) -> N x D`` on batches gathered from concurrent callers.
    ``on_batch(BatchStats)`` is called after every model call (metrics); ``waiting`` counts the crops
    queued and not yet in a model call."""

    def __init__(self, model: Callable[[np.ndarray], np.ndarray], *, max_batch: int = 32, max_wait_ms: float = 5.0,
                 on_batch: Callable[[BatchStats], None] | None = None) -> None:
        self.model = model
        self.max_batch = int(max_batch)
        self.max_wait = float(max_wait_ms) / 1000.0
        self.on_batch = on_batch
        self._queue: queue.Queue[_Item | None] = queue.Queue()
        self._held: _Item | None = None  # taken from the queue but left for the next batch (too big to fit)
        self._waiting = 0
        self._expected = 1  # requests in flight when the last call ended (see the module docstring)
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="facelivt-inference", daemon=True)
        self._thread.start()

    @property
    def waiting(self) -> int:
        return self._waiting

    def submit(self, crops: np.ndarray) -> Future:
        """A future of the embeddings (one row per crop) of ``crops``."""
        item = _Item(np.asarray(crops))
        if len(item.crops) == 0:
            item.future.set_result(np.zeros((0, 0), np.float32))
            return item.future
        with self._lock:
            self._waiting += len(item.crops)
        self._queue.put(item)
        return item.future

    def close(self) -> None:
        """Finish the batches already asked for, then stop the inference thread."""
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while True:
            batch = self._gather()
            if batch is None:
                return
            self._call(batch)

    def _next(self, timeout: float | None) -> _Item | None:
        if self._held is not None:
            item, self._held = self._held, None
            return item
        return self._queue.get(timeout=timeout) if timeout is None or timeout > 0 else self._queue.get_nowait()

    def _gather(self) -> list[_Item] | None:
        """The next batch: the first waiting request and those that come before the batch is full or
        the wait is over (see the module docstring); None to stop."""
        free = time.monotonic()
        first = self._next(None)
        if first is None:
            return None
        batch, size = [first], len(first.crops)
        deadline = max(first.queued, free) + self.max_wait
        while size < self.max_batch and len(batch) < self._expected:
            try:
                item = self._next(deadline - time.monotonic())
            except queue.Empty:
                break
            if item is None:  # close(): answer this batch, then stop
                self._queue.put(None)
                break
            if size + len(item.crops) > self.max_batch:
                self._held = item  # it starts the next batch
                break
            batch.append(item)
            size += len(item.crops)
        return batch

    def _call(self, batch: list[_Item]) -> None:
        crops = np.concatenate([item.crops for item in batch])
        with self._lock:
            self._waiting -= len(crops)
        start = time.perf_counter()
        try:
            rows = self.model(crops)
        except BaseException as exc:  # noqa: BLE001 - every waiting request gets the error
            log.exception("model call on %d crops failed", len(crops))
            for item in batch:
                item.future.set_exception(exc)
            return
        finally:
            self._expected = len(batch) + self._queue.qsize() + (self._held is not None)
        seconds = time.perf_counter() - start
        at = 0
        for item in batch:
            item.future.set_result(rows[at : at + len(item.crops)])
            at += len(item.crops)
        if self.on_batch is not None:
            self.on_batch(BatchStats(len(crops), len(batch), seconds))
