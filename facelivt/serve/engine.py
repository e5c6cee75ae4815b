"""The recognition side of the service: the model (loaded once per worker process, on the fastest backend
of ``optimize_for_inference``), the detector, and the micro-batcher their crops go through.

Photos are decoded under the service's pixel limit and detected on a pool of threads, off the event
loop (:meth:`Engine.photo`); the crops of every request are embedded by the one inference thread of
the :class:`~facelivt.serve.batcher.MicroBatcher` (:meth:`Engine.embed`)."""
from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from facelivt.data.decode import decode
from facelivt.deploy.optimize import optimize_for_inference
from facelivt.devices import resolve_device
from facelivt.inference.detector import Face, FaceDetector, NoFaceError
from facelivt.inference.recognizer import FaceRecognizer
from facelivt.models import DEFAULT_PRETRAINED, weights_variant
from facelivt.errors import InvalidInputError
from facelivt.serve.batcher import MicroBatcher
from facelivt.serve.config import ServeConfig
from facelivt.serve.errors import ApiError
from facelivt.serve.metrics import Metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PhotoFace:
    """A face of a photo: its detection in pixels of the photo as given (None: an aligned crop, which was
    not detected) and its aligned crop."""

    face: Face | None
    crop: np.ndarray

    def to_dict(self, side: int, embedding: np.ndarray | None = None) -> dict:
        """The API's face object (a crop's box is the whole crop)."""
        if self.face is None:
            out = {"box": [0.0, 0.0, float(side), float(side)], "landmarks": None, "score": None}
        else:
            f = self.face.to_dict()
            out = {"box": f["box"], "landmarks": f["points"], "score": f["score"]}
        if embedding is not None:
            out["embedding"] = [round(float(v), 7) for v in embedding]
        return out


@dataclass(frozen=True)
class Photo:
    """One uploaded photo: its ``name`` (the file name sent), ``width`` x ``height``, the ``faces`` used,
    largest first, and the ``sha256`` of its bytes (by which a gallery knows the photos it has)."""

    name: str
    width: int
    height: int
    faces: list[PhotoFace]
    sha256: str = ""


def choose_model(config: ServeConfig) -> str:
    """``--model``, else the model the ``--weights`` hold, else the default pretrained model."""
    if config.model:
        return config.model
    if config.weights is None:
        return DEFAULT_PRETRAINED
    variant = weights_variant(config.weights, progress=False)
    if variant is None:
        raise InvalidInputError(f"{config.weights} does not say which model it holds: give --model NAME")
    return variant


class Engine:
    """The model, detector and batcher of one worker process, set up by ``config``."""

    def __init__(self, config: ServeConfig, metrics: Metrics) -> None:
        self.config = config
        if config.threads is not None:
            torch.set_num_threads(config.threads)
        device = resolve_device(config.device, option="--device")
        detector = FaceDetector(None, device=device)
        rec = FaceRecognizer(choose_model(config), config.weights, device=device, detector=detector, progress=False,
                             batch_size=max(64, config.max_batch), workers=0)
        optimized = optimize_for_inference(rec.model, config.backend)
        optimized.preprocess = rec.preprocess  # how crops are normalised for it (embed_images reads it)
        rec.model = optimized
        self.backend = str(getattr(optimized, "backend", config.backend))
        self.recognizer = rec
        self.side = rec.input_size
        self.dim = rec.embedding_size
        self.pool = ThreadPoolExecutor(max(2, os.cpu_count() or 2), thread_name_prefix="facelivt-detect")
        self.batcher = MicroBatcher(rec.embed_aligned, max_batch=config.max_batch, max_wait_ms=config.max_wait_ms,
                                    on_batch=metrics.batch)
        self._warm_up()
        log.info("model %s (%s) on %s, backend %s", rec.model_name, rec.weights_source, device, self.backend)

    def _warm_up(self) -> None:
        """One model call and one detection now, so that the first request does not pay for them."""
        self.recognizer.embed_aligned(np.zeros((1, self.side, self.side, 3), np.uint8))
        self.recognizer.detector.detect(np.zeros((64, 64, 3), np.uint8))

    def close(self) -> None:
        self.batcher.close()
        self.pool.shutdown(wait=True)

    async def run(self, fn, *args):
        """``fn(*args)`` on the detection threads."""
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    async def embed(self, crops: list[np.ndarray]) -> np.ndarray:
        """Embeddings of ``crops`` (N x D), through the micro-batcher."""
        if not crops:
            return np.zeros((0, self.dim), np.float32)
        return await asyncio.wrap_future(self.batcher.submit(np.stack(crops)))

    def photo(self, data: bytes, name: str, largest: bool = False) -> Photo:
        """Decode ``data`` (under the pixel limit) and align its faces (only the largest with
        ``largest``; none found: an empty list); a photo with more than ``max_faces`` faces is refused (422 ``too_many_faces``)."""
        decoded = decode(data, name=name, max_pixels=self.config.max_pixels)
        width, height = decoded.original_size
        try:
            aligned = self.recognizer.detector.align(decoded.image, select="all", size=self.side)
        except NoFaceError:
            aligned = []
        self._check_faces(len(aligned), name)
        used = aligned[:1] if largest else aligned
        faces = [PhotoFace(a.as_given(), a.image) for a in used]
        return Photo(name, width, height, faces, hashlib.sha256(data).hexdigest())

    def _check_faces(self, found: int, name: str) -> None:
        """A 422 ``too_many_faces`` when a photo holds more than ``--max-faces`` faces."""
        if found > self.config.max_faces:
            raise ApiError(422, "too_many_faces", f"{name}: {found} faces found, more than the limit of "
                                                  f"{self.config.max_faces} (--max-faces)")

    def detect(self, data: bytes, name: str) -> Photo:
        """The faces of ``data`` without crops (an empty list when there is none)."""
        decoded = decode(data, name=name, max_pixels=self.config.max_pixels)
        width, height = decoded.original_size
        faces = self.recognizer.detector.detect(decoded.image)
        self._check_faces(len(faces), name)
        return Photo(name, width, height, [PhotoFace(f.clipped(width, height), np.empty(0, np.uint8)) for f in faces])

    def crop(self, data: bytes, name: str) -> Photo:
        """An aligned crop as given (it must be ``side`` x ``side``)."""
        image = decode(data, name=name, max_pixels=self.config.max_pixels).image
        if image.shape[:2] != (self.side, self.side):
            raise ApiError(400, "invalid_image", f"{name}: an aligned crop must be {self.side}x{self.side}, got "
                                                 f"{image.shape[1]}x{image.shape[0]}; send aligned=false to detect faces")
        return Photo(name, self.side, self.side, [PhotoFace(None, image)])
