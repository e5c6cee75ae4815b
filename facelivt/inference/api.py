"""The top-level Python API, for users of deepface and insightface: ``facelivt.verify``,
``facelivt.represent``, ``facelivt.find`` and ``facelivt.FaceAnalysis``.

    >>> import cv2, facelivt
    >>> facelivt.verify(cv2.imread("alice1.jpg"), cv2.imread("alice2.jpg")).verified
    >>> [f.box for f in facelivt.represent("group.jpg")]          # every face, largest first
    >>> app = facelivt.FaceAnalysis(); faces = app.get(cv2.imread("group.jpg"))

Images are paths, encoded bytes, PIL images or ``uint8`` arrays. An array has no colour order of its
own: ``color="bgr"`` (the default, as in insightface and deepface: what ``cv2.imread`` gives) or
``color="rgb"`` (``np.asarray(PIL.Image.open(...))``, matplotlib) says which it is; grey (HxW) arrays
need neither, BGRA / RGBA arrays are composited over white. Other dtypes and shapes are refused with
an :class:`~facelivt.data.decode.ImageLoadError` naming the problem.

The module-level functions share one :class:`FaceRecognizer` per ``(model, weights, device)``, made
on first use and kept for the life of the process (:func:`get_recognizer`; :func:`clear_cache` drops
them). They are thread-safe: calls on the same cached recognizer run one at a time under its lock. A
:class:`FaceRecognizer` or :class:`FaceAnalysis` you make yourself is not locked: use one per thread.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from facelivt.data.decode import Color, ImageSource, check_color, rgb_order
from facelivt.devices import resolve_device
from facelivt.inference.calibration import check_threshold
from facelivt.inference.detector import Face, NoFaceError
from facelivt.inference.gallery import Gallery, Match, check_comparable
from facelivt.inference.recognizer import EmbeddedFace, FacePolicy, FaceRecognizer
from facelivt.models import DEFAULT_PRETRAINED

_RECOGNIZERS: dict[tuple[str, str | None, str], tuple[FaceRecognizer, threading.Lock]] = {}
_CACHE_LOCK = threading.Lock()


def _cache_key(model: str, weights: str | os.PathLike | None, device: str) -> tuple[str, str | None, str]:
    if weights is not None and Path(weights).is_file():
        weights = Path(weights).resolve()  # the same file under another relative path is the same key
    return str(model), None if weights is None else os.fspath(weights), str(resolve_device(device))


def _cached(model: str, weights: str | os.PathLike | None, device: str) -> tuple[FaceRecognizer, threading.Lock]:
    key = _cache_key(model, weights, device)
    with _CACHE_LOCK:  # one load per key, even when several threads ask at once
        if key not in _RECOGNIZERS:
            _RECOGNIZERS[key] = (FaceRecognizer(model, weights, device=key[2]), threading.Lock())
        return _RECOGNIZERS[key]


def get_recognizer(
    model: str = DEFAULT_PRETRAINED, weights: str | os.PathLike | None = None, device: str = "auto"
) -> FaceRecognizer:
    """The recognizer the module-level functions use for ``(model, weights, device)`` (made on first
    use: ``weights`` None means the model's published pretrained weights, fetched once)."""
    return _cached(model, weights, device)[0]


def clear_cache() -> None:
    """Forget the cached recognizers (their memory is freed once nothing else holds them)."""
    with _CACHE_LOCK:
        _RECOGNIZERS.clear()


def _threshold(rec: FaceRecognizer, threshold: float | None) -> tuple[float, str]:
    if threshold is None:
        return rec.threshold, rec.threshold_source
    return check_threshold(threshold, "threshold"), "given"


@dataclass(frozen=True)
class Verification:
    """:func:`verify`'s answer: ``verified`` when the cosine ``score`` of the two faces reaches
    ``threshold`` (from ``threshold_source``: given, calibrated, or the uncalibrated default); the
    ``model`` and the ``weights`` that made the embeddings; for each photo, the detection of the face
    compared (``faces``: box, score and 5 landmarks in its pixels; None for an aligned crop), its
    index (0: the largest) and how many faces were ``found`` in it."""

    verified: bool
    score: float
    threshold: float
    threshold_source: str
    model: str
    weights: str
    faces: tuple[Face | None, Face | None]
    face_indices: tuple[int, int] = (0, 0)
    found: tuple[int, int] = (1, 1)

    def to_dict(self) -> dict:
        """JSON-friendly form."""
        faces = [None if f is None else {"face_index": i, "found": n, **f.to_dict()}
                 for f, i, n in zip(self.faces, self.face_indices, self.found)]
        return {"verified": self.verified, "score": self.score, "threshold": self.threshold,
                "threshold_source": self.threshold_source, "model": self.model, "weights": self.weights,
                "faces": faces}


def verify(
    img1: ImageSource,
    img2: ImageSource,
    *,
    model: str = DEFAULT_PRETRAINED,
    weights: str | os.PathLike | None = None,
    device: str = "auto",
    color: Color = "bgr",
    threshold: float | None = None,
    face: FacePolicy = "largest",
    aligned: bool = False,
) -> Verification:
    """Are the faces of ``img1`` and ``img2`` the same person? The largest face of each
    (``face="all"``: the best-matching pair of faces; ``"error"``: refuse photos with several).
    ``threshold``: the cosine score to reach (default: the recognizer's, see :class:`Verification`).
    ``aligned``: the images are 112x112 aligned crops. Raises ``NoFaceError`` / ``ImageLoadError``
    for a photo that cannot be used."""
    check_color(color)
    rec, lock = _cached(model, weights, device)
    with lock:
        cmp = rec.compare(rgb_order(img1, color), rgb_order(img2, color), aligned=aligned, face=face)
        limit, source = _threshold(rec, threshold)
    return Verification(cmp.score >= limit, cmp.score, limit, source, rec.model_name, rec.weights_source,
                        (cmp.detection_a, cmp.detection_b), (cmp.face_a, cmp.face_b), (cmp.found_a, cmp.found_b))


def represent(
    img: ImageSource,
    *,
    model: str = DEFAULT_PRETRAINED,
    weights: str | os.PathLike | None = None,
    device: str = "auto",
    color: Color = "bgr",
    face: FacePolicy = "all",
    aligned: bool = False,
) -> list[EmbeddedFace]:
    """One :class:`EmbeddedFace` per face of ``img``, largest first: ``embedding`` (L2-normalised),
    ``box`` [x1, y1, x2, y2], ``landmarks`` (5x2), ``det_score`` and ``face_index``.
    ``face="largest"``: only the largest face. Raises ``NoFaceError`` when there is none."""
    check_color(color)
    rec, lock = _cached(model, weights, device)
    with lock:
        return rec.represent(rgb_order(img, color), aligned=aligned, face=face)


@dataclass(frozen=True)
class FaceSearch:
    """:func:`find`'s answer for one face of the photo: the ``face`` searched and its top ``matches``
    in the gallery, best first, each ``accepted`` when its score reaches ``threshold``."""

    face: EmbeddedFace
    matches: list[Match]
    threshold: float
    threshold_source: str

    @property
    def identity(self) -> str | None:
        """The best match when it is accepted, else None (an unknown person)."""
        return self.matches[0].name if self.matches and self.matches[0].accepted else None


def find(
    img: ImageSource,
    gallery: Gallery | str | os.PathLike,
    *,
    k: int = 5,
    model: str = DEFAULT_PRETRAINED,
    weights: str | os.PathLike | None = None,
    device: str = "auto",
    color: Color = "bgr",
    threshold: float | None = None,
    face: FacePolicy = "all",
) -> list[FaceSearch]:
    """Search ``gallery`` (a :class:`Gallery`, or the folder of a saved one) for every face of
    ``img`` (``face="largest"``: the largest only): one :class:`FaceSearch` per face, largest first,
    with the top ``k`` identities. The gallery must hold embeddings of the same model and weights
    (``GalleryMismatchError`` otherwise). ``threshold``: default the recognizer's when given or
    calibrated, else the one saved with the gallery, else the uncalibrated default."""
    check_color(color)
    rec, lock = _cached(model, weights, device)
    opened = None if isinstance(gallery, Gallery) else Gallery.open(gallery, readonly=True)
    target = gallery if opened is None else opened
    try:
        with lock:
            check_comparable(target.metadata, target.dim, rec.gallery_metadata(), rec.embedding_size,
                             target.path or "(in memory)")
            faces = rec.represent(rgb_order(img, color), face=face)
            limit, source = target.threshold_for(*_threshold(rec, threshold))
        hits = target.search(np.stack([f.embedding for f in faces]), k)
    finally:
        if opened is not None:
            opened.close()
    return [FaceSearch(f, [Match(m.name, m.score, m.score >= limit) for m in row], limit, source)
            for f, row in zip(faces, hits)]


@dataclass(frozen=True, eq=False)
class AnalysedFace:
    """A face from :meth:`FaceAnalysis.get`, named as insightface names them: ``bbox`` [x1, y1, x2, y2]
    and ``kps`` (5x2: eyes, nose, mouth corners) in pixels (float32), ``det_score`` in (0, 1],
    ``embedding`` (float32, already L2-normalised, so equal to ``normed_embedding``), ``face_index``
    (0: the largest). ``face["bbox"]`` works too."""

    bbox: np.ndarray
    kps: np.ndarray
    det_score: float
    embedding: np.ndarray
    face_index: int = 0

    @property
    def normed_embedding(self) -> np.ndarray:
        return self.embedding / max(float(np.linalg.norm(self.embedding)), 1e-12)

    @property
    def embedding_norm(self) -> float:
        return float(np.linalg.norm(self.embedding))

    def sim(self, other: "AnalysedFace") -> float:
        """Cosine similarity with ``other`` (compare it with the recognizer's threshold)."""
        return float(self.normed_embedding.astype(np.float64) @ other.normed_embedding.astype(np.float64))

    def __getitem__(self, key: str):
        return getattr(self, key)


class FaceAnalysis:
    """insightface's ``FaceAnalysis``, on a FaceLiVT model: ``app = FaceAnalysis(); app.get(img)``.

    ``model`` / ``weights``: as for :class:`FaceRecognizer` (default: the pretrained
    :data:`~facelivt.models.pretrained.DEFAULT_PRETRAINED`); ``color``: the channel order of arrays
    given to :meth:`get` (``"bgr"``, OpenCV's, by default); other keywords go to
    :class:`FaceRecognizer` (``threshold``, ``mtcnn_weights``, ``batch_size``, ...). The recognizer
    is ``app.recognizer`` (its ``threshold`` says when :meth:`AnalysedFace.sim` means "same")."""

    def __init__(
        self,
        model: str = DEFAULT_PRETRAINED,
        weights: str | os.PathLike | None = None,
        *,
        device: str = "auto",
        color: Color = "bgr",
        **options,
    ) -> None:
        self.color = check_color(color)
        self._make = (model, weights, options)
        self.recognizer = FaceRecognizer(model, weights, device=device, **options)

    def prepare(self, ctx_id: int = 0, det_size: tuple[int, int] | None = None) -> None:
        """insightface's set-up call, so that its code runs unchanged: ``ctx_id`` -1 runs on the CPU,
        0 or more on that GPU when CUDA is usable (else on the CPU, as insightface falls back).
        ``det_size`` changes nothing: MTCNN searches every face from 20 pixels up at any image size."""
        want = resolve_device(f"cuda:{ctx_id}" if ctx_id >= 0 and torch.cuda.is_available() else "cpu")
        if want != self.recognizer.device:
            model, weights, options = self._make
            self.recognizer = FaceRecognizer(model, weights, device=want, **options)

    def get(self, img: ImageSource, max_num: int = 0) -> list[AnalysedFace]:
        """Every face of ``img``, largest first (at most ``max_num`` when it is above 0); an empty list
        when there is none. An unreadable image raises ``ImageLoadError``."""
        try:
            faces = self.recognizer.represent(rgb_order(img, self.color), face="all")
        except NoFaceError:
            return []
        if max_num > 0:
            faces = faces[:max_num]
        return [AnalysedFace(f.box.astype(np.float32), f.landmarks.astype(np.float32), float(f.det_score),
                             f.embedding, f.face_index) for f in faces]
