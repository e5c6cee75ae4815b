"""FaceRecognizer: detect, align, embed, verify and search faces with a FaceLiVT model.

Embeddings follow the evaluation protocol: the embedding of a crop plus that of
its horizontal flip, L2-normalised. Scores are cosine similarities in [-1, 1]; two faces are the
same person when the score reaches ``threshold`` (calibrate it with :meth:`FaceRecognizer.calibrate`).

Arrays are taken as RGB unless the recognizer is made with ``color="bgr"`` (OpenCV's order; the
top-level ``facelivt.verify`` / ``represent`` / ``find`` default to BGR, see :mod:`facelivt.inference.api`).

A photo may hold several faces. ``face`` chooses what to do: ``"largest"`` (the default) uses the
largest face and logs a warning naming the photo, ``"error"`` refuses the photo
(:class:`SeveralFacesError`), ``"all"`` uses every face (:meth:`iter_faces`, :meth:`embed`, and
:meth:`verify`, which compares the best-matching pair of faces).
"""
from __future__ import annotations

import hashlib
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Literal, Sequence

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from facelivt.data.decode import Color, ImageSource, check_color, rgb_order
from facelivt.devices import resolve_device
from facelivt.errors import InvalidInputError
from facelivt.evaluation.binset import read_bin
from facelivt.inference.calibration import (
    FROM_CARD,
    UNCALIBRATED,
    Calibration,
    calibrate_scores,
    check_threshold,
    read_pairs_list,
)
from facelivt.inference.detector import Face, FaceDetector, Select, SeveralFacesError
from facelivt.inference.gallery import Gallery, Match
from facelivt.inference.images import load_image
from facelivt.inference.pipeline import DEFAULT_WORKERS, Prepared, check_workers, prepare_in_order
from facelivt.models import DEFAULT_PRETRAINED, PRETRAINED, check_model_name, list_pretrained, load_model, preprocess_of
from facelivt.models.card import ModelCard, TrainingData, warning_for
from facelivt.models.weights import copy_with_card, store_card, weights_fingerprint
from facelivt.models.embed import embed_images, embedding_dim

log = logging.getLogger(__name__)

#: A generic starting point for well-trained ArcFace/CosFace-style models; calibrate for real use.
DEFAULT_THRESHOLD = 0.3

FacePolicy = Literal["largest", "all", "error"]
FACE_POLICIES = ("largest", "all", "error")


@dataclass(frozen=True)
class EmbeddedFace:
    """One face of a photo: its ``embedding`` (D, L2-normalised float32), ``face_index`` (0 is the
    largest of the ``found`` faces detected), and its detection in pixels of the photo as given:
    ``box`` [x1, y1, x2, y2] (clipped to the photo), ``landmarks`` 5x2 (x, y: left eye, right eye,
    nose, left and right mouth corners) and ``det_score`` in (0, 1]. An aligned crop (``aligned=True``) was not detected: its
    box is the whole crop, its landmarks and score are None."""

    embedding: np.ndarray
    box: np.ndarray
    landmarks: np.ndarray | None
    det_score: float | None
    face_index: int = 0
    found: int = 1

    def to_dict(self) -> dict:
        """JSON-friendly form (the embedding as a list of floats)."""
        return {
            "face_index": self.face_index,
            "box": [round(float(v), 2) for v in self.box],
            "landmarks": None if self.landmarks is None else [[round(float(x), 2), round(float(y), 2)]
                                                              for x, y in self.landmarks],
            "det_score": None if self.det_score is None else round(float(self.det_score), 5),
            "embedding": [float(v) for v in self.embedding],
        }


@dataclass(frozen=True)
class PhotoFaces:
    """The faces used from input ``index``: ``embeddings`` (k x D) of faces ``faces`` (0 is the
    largest) out of ``found`` detected (1 for an aligned crop), with their ``detections`` (None for
    an aligned crop); or the ``error`` that made it unusable."""

    index: int
    embeddings: np.ndarray | None
    found: int = 0
    faces: tuple[int, ...] = ()
    error: Exception | None = None
    detections: tuple[Face | None, ...] = ()

    def embedded_faces(self, crop_side: int = 112) -> list[EmbeddedFace]:
        """One :class:`EmbeddedFace` per face used (none when the photo failed); an undetected
        (aligned) crop gets the box of the whole ``crop_side`` square."""
        if self.embeddings is None:
            return []
        whole = np.array([0.0, 0.0, crop_side, crop_side])
        return [
            EmbeddedFace(e, whole if d is None else d.box, None if d is None else d.points,
                         None if d is None else d.score, i, self.found)
            for e, i, d in zip(self.embeddings, self.faces, self.detections)
        ]


@dataclass(frozen=True)
class _Crops:
    """What the pipeline's workers make of one photo: the aligned ``crops`` to embed, how many faces
    were ``found``, and the ``detections`` of the crops (pixels of the photo; None: an aligned crop)."""

    crops: list[np.ndarray]
    found: int
    detections: tuple[Face | None, ...]


@dataclass(frozen=True)
class Comparison:
    """:meth:`FaceRecognizer.compare`: the ``score`` of face ``face_a`` of A against face ``face_b``
    of B, ``same`` when it reaches ``threshold``; ``found_a`` / ``found_b`` faces were detected."""

    score: float
    same: bool
    threshold: float
    face_a: int = 0
    face_b: int = 0
    found_a: int = 1
    found_b: int = 1
    detection_a: Face | None = None  # box, score and landmarks of face ``face_a`` (None: an aligned crop)
    detection_b: Face | None = None


def describe(image: ImageSource) -> str:
    """A short name for an input in messages: its path, or its kind."""
    return str(image) if isinstance(image, (str, os.PathLike)) else f"<{type(image).__name__}>"


def check_face_policy(face: str) -> str:
    if face not in FACE_POLICIES:
        raise InvalidInputError(f"face must be one of {', '.join(FACE_POLICIES)}, got {face!r}")
    return face


def _as_list(images: ImageSource | Iterable[ImageSource]) -> list:
    if isinstance(images, (str, os.PathLike, bytes, np.ndarray)) or hasattr(images, "mode"):
        if isinstance(images, np.ndarray) and images.ndim == 4:
            return list(images)
        return [images]
    return list(images)


def fingerprint_module(model: nn.Module) -> str:
    """First 16 hex digits of a SHA-256 over the module's state (names, shapes, values)."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


class FaceRecognizer:
    """Face recognition pipeline around a FaceLiVT model.

    ``model``: a model name (see ``facelivt.list_models()``; default
    :data:`~facelivt.models.pretrained.DEFAULT_PRETRAINED`) or an ``nn.Module`` mapping Bx3x112x112
    normalised crops to BxD embeddings. ``weights``: this project's safetensors, the authors' ``.pt``, a
    pretrained name or a remote reference (``hf://owner/repo/file``, ``https://...``); None: the published
    pretrained weights of ``model`` (fetched once into the cache), or with ``pretrained=False`` random
    weights (only useful for tests). ``weights_source`` says which were loaded. ``deploy`` loads the
    reparameterized form.
    ``detector``: a :class:`FaceDetector`, or None to build one lazily from ``mtcnn_weights``.
    ``threshold``: cosine score in (-1, 1] at which :meth:`verify` says "same"; by default the
    threshold calibrated for the weights (their model card: :attr:`card`, see ``facelivt calibrate``),
    else :data:`DEFAULT_THRESHOLD` ("uncalibrated"); a loaded gallery's threshold replaces either.
    :attr:`threshold_source` says which. :attr:`warning` says why verdicts cannot be trusted when the
    weights have no record of training on real faces (logged once); :attr:`reliable` is False when,
    on top of that, the threshold is the uncalibrated default.
    ``color``: the channel order of image arrays given to it, ``"rgb"`` (PIL's, the default) or
    ``"bgr"`` (OpenCV's ``cv2.imread``); paths and PIL images say their own. Aligned crops it returns
    (:meth:`align`) are RGB whatever ``color`` is.
    ``workers``: threads that decode, detect and align photos ahead of the network in the batch calls
    (:meth:`iter_faces` and all that use it; see :mod:`facelivt.inference.pipeline`); 0: one photo at
    a time in the calling thread. The results are the same either way.
    """

    def __init__(
        self,
        model: str | nn.Module = DEFAULT_PRETRAINED,
        weights: str | os.PathLike | None = None,
        *,
        pretrained: bool = True,
        device: str | torch.device = "cpu",
        deploy: bool = True,
        detector: FaceDetector | None = None,
        mtcnn_weights: str | os.PathLike | None = None,
        threshold: float | None = None,
        flip: bool = True,
        batch_size: int = 64,
        progress: bool = True,
        color: Color = "rgb",
        workers: int = DEFAULT_WORKERS,
        **model_overrides,
    ) -> None:
        self.color = check_color(color)
        self.workers = check_workers(workers)
        if batch_size < 1:
            raise InvalidInputError(f"batch_size must be at least 1, got {batch_size}")
        self.device = resolve_device(device)
        if isinstance(model, nn.Module):
            if weights is not None:
                raise InvalidInputError("weights cannot be given together with a model instance")
            self.model_name = type(model).__name__
            self.model = model.to(self.device).eval()
            self.weights_fingerprint = fingerprint_module(self.model)
            self.weights_source = f"a {self.model_name} instance"
            self.card = getattr(model, "model_card", None)
        else:
            self._load(str(model), weights, pretrained, deploy, progress, model_overrides)
        self.model.requires_grad_(False)
        self.preprocess = preprocess_of(self.model)  # input side and normalisation of the crops
        self._detector = detector
        self._mtcnn_weights = mtcnn_weights
        self._initial_threshold(threshold)
        self.warning = warning_for(self.card)
        if self.warning is not None:
            log.warning("%s: %s", self.weights_source, self.warning)
        self.flip = bool(flip)
        self.batch_size = int(batch_size)
        self.gallery = self._new_gallery()

    def _load(self, name: str, weights, pretrained: bool, deploy: bool, progress: bool, overrides: dict) -> None:
        """Load model ``name``: ``weights`` (a file, pretrained name or remote reference), else its
        published pretrained weights (``pretrained``), else random weights with a warning."""
        check_model_name(name)
        if weights is None and pretrained:
            if name not in PRETRAINED:
                raise InvalidInputError(
                    f"{name!r} has no published pretrained weights ({', '.join(list_pretrained())} have): give "
                    "weights=FILE or a reference, or pretrained=False for random weights (tests only)")
            weights = name
        if weights is None:
            warnings.warn(f"FaceRecognizer({name!r}) has no weights: embeddings of a random network are meaningless",
                          stacklevel=3)
        self.model_name = name
        self.model = load_model(name, weights, deploy=deploy, device=str(self.device), progress=progress, **overrides)
        self.weights_source = getattr(self.model, "weights_source", "random initialisation")
        self.card: ModelCard | None = getattr(self.model, "model_card", None)
        if weights is None:
            self.card = ModelCard(model=name, training=TrainingData("random initialisation", faces="none"),
                                  provenance="random initialisation")
        cached = getattr(self.model, "weights_record", None)
        if cached is not None:  # the download's sha256: the same as a local copy of the same file gives
            self.weights_fingerprint = cached["sha256"][:16]
        elif weights is not None:
            self.weights_fingerprint = weights_fingerprint(self.model.weights_path)[:16]  # the same once calibrated
        else:
            self.weights_fingerprint = fingerprint_module(self.model)

    def _initial_threshold(self, threshold: float | None) -> None:
        """The given threshold, else the one the model card records, else the uncalibrated default."""
        calibrated = self.card.threshold if self.card is not None else None
        if threshold is not None:
            self.threshold, self.threshold_source = threshold, "given"
        elif calibrated is not None:
            self.threshold = check_threshold(calibrated.cosine, f"the model card of {self.weights_source}")
            self.threshold_source = f"{FROM_CARD}{calibrated.describe()}"
        else:
            self.threshold, self.threshold_source = DEFAULT_THRESHOLD, UNCALIBRATED

    @property
    def reliable(self) -> bool:
        """False when the weights have no record of training on real faces and the threshold is the
        uncalibrated default: a verdict ("same person", an accepted match) then means nothing."""
        return self.warning is None or self.threshold_source != UNCALIBRATED

    @property
    def threshold(self) -> float:
        """The cosine score at which two faces are the same person (a number in (-1, 1])."""
        return self._threshold

    @threshold.setter
    def threshold(self, value: float) -> None:
        self._threshold = check_threshold(value, "threshold")

    # ------------------------------------------------------------------ detection / alignment
    @property
    def detector(self) -> FaceDetector:
        """The face detector (loaded on first use)."""
        if self._detector is None:
            self._detector = FaceDetector(self._mtcnn_weights, device=self.device)
        return self._detector

    def detect(self, image: ImageSource):
        """Faces in ``image`` (see :meth:`FaceDetector.detect`)."""
        return self.detector.detect(rgb_order(image, self.color))

    def align(self, image: ImageSource, select: Select = "largest") -> list[np.ndarray]:
        """112x112 aligned crops (uint8 RGB) of the largest face, or of all faces with ``select="all"``.
        Raises ``NoFaceError`` when the image holds no face."""
        return [a.image for a in self.detector.align(rgb_order(image, self.color), select=select, size=self.input_size)]

    def _aligned_crop(self, image: ImageSource) -> np.ndarray:
        crop = load_image(rgb_order(image, self.color))
        if crop.shape[:2] != (self.input_size, self.input_size):
            name = image if isinstance(image, (str, os.PathLike)) else "array"
            raise InvalidInputError(
                f"{name}: aligned input must be {self.input_size}x{self.input_size}, got {crop.shape[1]}x{crop.shape[0]}; "
                "leave out --aligned (aligned=False) to detect and align"
            )
        return crop

    def _crops(self, image: ImageSource, aligned: bool, face: str) -> "_Crops":
        """The crops to embed from ``image`` under the face policy (decoded, detected and aligned; run
        on the pipeline's worker threads)."""
        if aligned:
            return _Crops([self._aligned_crop(image)], 1, (None,))
        faces = self.detector.align(rgb_order(image, self.color), select="all", size=self.input_size)
        if len(faces) > 1 and face == "error":
            name = faces[0].source.name if faces[0].source is not None else describe(image)
            raise SeveralFacesError(f"{name}: {len(faces)} faces found; photos with several faces are refused "
                                    "(face policy 'error')", found=len(faces))
        used = faces if face == "all" else faces[:1]
        return _Crops([f.image for f in used], len(faces), tuple(f.as_given() for f in used))

    # ------------------------------------------------------------------ embeddings
    @torch.inference_mode()
    def embed_aligned(self, crops: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Embeddings (N x D, L2-normalised, float32) of aligned 112x112 uint8 RGB crops."""
        crops = np.asarray(crops)
        if crops.ndim == 3:
            crops = crops[None]
        if crops.ndim != 4 or crops.shape[1:] != (self.input_size, self.input_size, 3) or crops.dtype != np.uint8:
            raise InvalidInputError(f"expected Nx{self.input_size}x{self.input_size}x3 uint8 crops, got {crops.dtype} {crops.shape}")
        if len(crops) == 0:
            return np.zeros((0, self.embedding_size), np.float32)
        emb = embed_images(self.model, crops, batch_size=self.batch_size, device=self.device, flip=self.flip,
                           progress=False)
        return torch.nn.functional.normalize(torch.from_numpy(emb), dim=1).numpy()

    @property
    def input_size(self) -> int:
        """Side of the aligned crops the model takes (``model.preprocess.input_size``, 112)."""
        return self.preprocess.input_size

    @property
    def embedding_size(self) -> int:
        """Embedding dimension D (found by running the model once)."""
        if not hasattr(self, "_dim"):
            self._dim = embedding_dim(self.model, self.device, size=self.input_size)
        return self._dim

    def embed(
        self,
        images: ImageSource | Iterable[ImageSource],
        *,
        aligned: bool = False,
        progress: bool = False,
        face: FacePolicy = "largest",
    ) -> np.ndarray:
        """Embeddings (N x D, L2-normalised) of the largest face of each image, batched; with
        ``face="all"``, one row per face (largest first within an image).

        ``aligned=True``: the images are already 112x112 aligned crops. Raises ``NoFaceError``,
        ``ImageLoadError`` or (``face="error"``) ``SeveralFacesError`` for the first image that fails
        (use :meth:`iter_faces` to go past them).
        """
        chunks = []
        for result in self._faces_in_order(_as_list(images), aligned, progress, "embed", face):
            chunks.extend(result.embeddings)
        return np.stack(chunks) if chunks else np.zeros((0, self.embedding_size), np.float32)

    def _faces_in_order(self, items: list, aligned: bool, progress: bool, desc: str, face: str) -> list[PhotoFaces]:
        """:meth:`iter_faces` of every item in input order; the first failure is raised."""
        results = sorted(self.iter_faces(items, aligned=aligned, progress=progress, desc=desc, face=face),
                         key=lambda r: r.index)
        for r in results:
            if r.error is not None:
                raise r.error
            if face == "largest" and r.found > 1:
                _warn_largest(describe(items[r.index]), r.found)
        return results

    def iter_faces(
        self,
        images: Iterable[ImageSource],
        *,
        aligned: bool = False,
        face: FacePolicy = "largest",
        progress: bool = False,
        desc: str = "embed",
    ) -> Iterator[PhotoFaces]:
        """A :class:`PhotoFaces` per image: the embeddings of the faces ``face`` selects, or the
        error for images that cannot be read, hold no face or (``face="error"``) several faces.
        Photos are decoded, detected and aligned on :attr:`workers` threads a few ahead (never all of
        them at once: ``images`` may be a generator), results come in input order, and the network
        runs on batches of up to ``batch_size`` crops. Nothing is logged: the caller reports."""
        check_face_policy(face)
        return self._in_batches(self._prepared(images, aligned, face, progress, desc))

    def _prepared(self, images: Iterable[ImageSource], aligned: bool, face: str, progress: bool,
                  desc: str) -> Iterator[Prepared]:
        """The crops of each photo, made on the pipeline's workers, in input order (with a progress bar)."""
        total = len(images) if hasattr(images, "__len__") else None
        bar = tqdm(total=total, desc=desc, unit="img", disable=not progress)
        if not aligned:
            self._detector = self.detector  # made once, here, before the worker threads share it
        # an aligned crop decodes in about 1/40 of its embedding's time: one worker keeps ahead, and
        # more would only take cores from the network's threads
        workers = min(self.workers, 1) if aligned else self.workers
        try:
            for done in prepare_in_order(lambda item: self._crops(item, aligned, face), images, workers):
                bar.update(1)
                yield done
        finally:
            bar.close()

    def _in_batches(self, prepared: Iterable[Prepared]) -> Iterator[PhotoFaces]:
        """The :class:`PhotoFaces` of the pipeline's results, in their order: the crops wait until
        ``batch_size`` of them (or ``4 x batch_size`` photos) are gathered, then go through the
        network together; a failure with nothing waiting before it is answered at once."""
        pending: list[Prepared] = []
        crops = 0
        for done in prepared:
            if done.error is not None and not pending:
                yield PhotoFaces(done.index, None, error=done.error)
                continue
            pending.append(done)
            crops += 0 if done.error is not None else len(done.value.crops)
            if crops >= self.batch_size or len(pending) >= 4 * self.batch_size:
                yield from self._embedded(pending)
                pending, crops = [], 0
        yield from self._embedded(pending)

    def _embedded(self, pending: list[Prepared]) -> Iterator[PhotoFaces]:
        """The :class:`PhotoFaces` of ``pending`` results, their crops embedded in one batch."""
        crops = [c for p in pending if p.error is None for c in p.value.crops]
        emb = self.embed_aligned(np.stack(crops)) if crops else None
        at = 0
        for p in pending:
            if p.error is not None:
                yield PhotoFaces(p.index, None, error=p.error)
                continue
            n = len(p.value.crops)
            yield PhotoFaces(p.index, emb[at : at + n], p.value.found, tuple(range(n)), detections=p.value.detections)
            at += n

    def iter_embed(
        self,
        images: Iterable[ImageSource],
        *,
        aligned: bool = False,
        progress: bool = False,
        desc: str = "embed",
        face: FacePolicy = "largest",
    ) -> Iterator[tuple[int, np.ndarray | None, Exception | None]]:
        """Yield ``(index, embedding, None)`` per image, or ``(index, None, error)`` for images that
        cannot be read or hold no face. One embedding per image: ``face`` is "largest" (a photo with
        several faces is logged) or "error"; for every face use :meth:`iter_faces`."""
        if face == "all":
            raise InvalidInputError("iter_embed gives one embedding per image: use iter_faces for face='all'")
        names: dict[int, str] = {}  # of the photos read but not yet answered (bounded like the pipeline)

        def named() -> Iterator[ImageSource]:
            for i, item in enumerate(images):
                names[i] = describe(item)
                yield item

        if isinstance(images, Sequence):  # a list holds its images anyway; its length sizes the progress bar
            names, source = dict(enumerate(map(describe, images))), images
        else:
            source = named()
        for r in self.iter_faces(source, aligned=aligned, face=face, progress=progress, desc=desc):
            name = names.pop(r.index)
            if r.error is not None:
                yield r.index, None, r.error
                continue
            if r.found > 1:
                _warn_largest(name, r.found)
            yield r.index, r.embeddings[0], None

    # ------------------------------------------------------------------ verification
    def similarity(self, a: np.ndarray, b: np.ndarray) -> float:
        """Cosine similarity of two embeddings."""
        a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
        return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))

    def verify(
        self, a: ImageSource, b: ImageSource, *, aligned: bool = False, face: FacePolicy = "largest"
    ) -> tuple[float, bool]:
        """``(score, same)``: cosine similarity of the two faces' embeddings and ``score >= threshold``
        (see :meth:`compare`; a photo with several faces under ``face="largest"`` is logged)."""
        result = self.compare(a, b, aligned=aligned, face=face)
        if face == "largest":
            for image, found in ((a, result.found_a), (b, result.found_b)):
                if found > 1:
                    _warn_largest(describe(image), found)
        return result.score, result.same

    def compare(
        self, a: ImageSource, b: ImageSource, *, aligned: bool = False, face: FacePolicy = "largest"
    ) -> Comparison:
        """Compare the face of ``a`` with that of ``b``. With ``face="all"`` every face of ``a`` is
        compared with every face of ``b`` and the best-scoring pair is reported ("is someone in both
        photos?"). Raises the error of a photo that cannot be used."""
        (ra, rb) = sorted(self.iter_faces([a, b], aligned=aligned, face=face), key=lambda r: r.index)
        for r in (ra, rb):
            if r.error is not None:
                raise r.error
        scores = ra.embeddings.astype(np.float64) @ rb.embeddings.astype(np.float64).T  # unit vectors (embed_aligned)
        i, j = np.unravel_index(int(np.argmax(scores)), scores.shape)
        score = float(scores[i, j])
        return Comparison(score, score >= self.threshold, self.threshold, ra.faces[i], rb.faces[j], ra.found, rb.found,
                          ra.detections[i], rb.detections[j])

    def represent(self, image: ImageSource, *, aligned: bool = False, face: FacePolicy = "all") -> list[EmbeddedFace]:
        """Every face of ``image`` (``face="all"``, largest first; ``"largest"``: only that one;
        ``"error"``: refuse a photo with several) with its embedding, box, landmarks and detection
        score. Raises ``NoFaceError`` / ``ImageLoadError`` when the photo cannot be used."""
        (result,) = self._faces_in_order([image], aligned, False, "represent", face)
        return result.embedded_faces(self.input_size)

    def calibrate(
        self,
        pairs: str | os.PathLike | Sequence[tuple[ImageSource, ImageSource, bool]],
        *,
        target_far: float | None = None,
        aligned: bool = False,
        progress: bool = False,
        name: str | None = None,
    ) -> Calibration:
        """Set :attr:`threshold` from labelled pairs and return how it does on them.

        ``pairs``: a ``.bin`` verification set (aligned crops), a pairs-list text file (see
        :mod:`facelivt.inference.calibration`) or a sequence of ``(image_a, image_b, same)``;
        ``aligned`` says whether the pairs' images are aligned crops (a ``.bin`` always is).
        The threshold maximises accuracy, or keeps the false accept rate at most ``target_far``.
        Pairs whose images fail (unreadable, no face) are left out; the count is in ``num_pairs``.
        ``name``: what the pairs are, in :attr:`threshold_source` (default: the file, or "pairs").
        To keep the threshold with the weights, see :meth:`save_calibration`.
        """
        if isinstance(pairs, (str, os.PathLike)) and Path(pairs).suffix.lower() == ".bin":
            binset = read_bin(pairs)
            crops = np.concatenate(list(binset.iter_batches(self.batch_size, size=self.input_size)))
            emb = self.embed_aligned(crops)  # .bin sets hold aligned crops
            scores = np.sum(emb[0::2] * emb[1::2], axis=1)
            result = calibrate_scores(scores, binset.issame, target_far)
            source = str(pairs)
        else:
            if isinstance(pairs, (str, os.PathLike)):
                source = str(pairs)
                pairs = read_pairs_list(pairs)
            else:
                source = "pairs"
            pairs = list(pairs)
            flat = [img for a, b, _ in pairs for img in (a, b)]
            emb: list[np.ndarray | None] = [None] * len(flat)
            for i, e, _err in self.iter_embed(flat, aligned=aligned, progress=progress, desc="calibrate"):
                emb[i] = e
            scores, labels = [], []
            for p, (_, _, same) in enumerate(pairs):
                ea, eb = emb[2 * p], emb[2 * p + 1]
                if ea is not None and eb is not None:
                    scores.append(float(ea @ eb))
                    labels.append(bool(same))
            if not scores:
                raise InvalidInputError(f"no usable pair in {source}: every pair had an unreadable image or no face")
            result = calibrate_scores(np.array(scores), np.array(labels), target_far)
        self.threshold = result.threshold
        self.threshold_source = f"{result.rule} on {name or source}"
        return result

    def save_calibration(self, calibration: Calibration, source: str, out: str | os.PathLike | None = None) -> Path:
        """Record ``calibration`` (chosen on ``source``) in the model card of the weights and return
        the file written (see :func:`facelivt.models.store_card`): the weights file itself, or its
        side file ``WEIGHTS.card.json`` for weights that must not be rewritten (a pretrained cache
        entry, a read-only file, a torch checkpoint). ``out``: write a safetensors copy of the weights
        with the card there instead, leaving the weights as they are."""
        path = getattr(self.model, "weights_path", None)
        if path is None:
            raise InvalidInputError("these weights come from no file (a model instance or random weights): "
                                    "there is no model card to write the threshold into")
        base = self.card or ModelCard(model=self.model_name, provenance=f"{self.weights_source} (it had no model card)")
        card = base.with_threshold(calibration.card_threshold(source))
        if out is not None:
            return copy_with_card(self.model_name, path, out, card)
        cached = getattr(self.model, "weights_record", None) is not None
        written = store_card(path, card, rewrite=not cached)
        self.card = card
        return written

    # ------------------------------------------------------------------ gallery
    def gallery_metadata(self) -> dict:
        """What a gallery records about the embeddings it holds (they are comparable only when it agrees)."""
        return {"model": self.model_name, "weights_fingerprint": self.weights_fingerprint, "flip": self.flip}

    def _new_gallery(self) -> Gallery:
        return Gallery(self.embedding_size, metadata=self.gallery_metadata())

    def enroll(
        self,
        name: str,
        images: ImageSource | Iterable[ImageSource],
        *,
        aligned: bool = False,
        progress: bool = False,
        face: FacePolicy = "largest",
    ) -> int:
        """Embed ``images`` (the largest face of each; ``face="error"`` refuses photos with several)
        and add them to identity ``name`` in one step; returns how many. Fails (and enrols nothing)
        when any image cannot be used. A gallery opened from a folder writes them at once."""
        if face == "all":
            raise InvalidInputError("enroll takes one face per photo: face='all' would put everyone in a group photo "
                                    "under one name; use 'largest' or 'error'")
        items = _as_list(images)
        emb = self.embed(items, aligned=aligned, progress=progress, face=face)
        if len(emb) == 0:
            raise InvalidInputError(f"no images given to enroll {name!r}")
        sources = [str(x) if isinstance(x, (str, os.PathLike)) else None for x in items]
        self.gallery.enroll_embeddings(name, emb, sources=sources)
        return len(emb)

    def identify(
        self, image: ImageSource, k: int = 5, *, aligned: bool = False, face: FacePolicy = "largest"
    ) -> list[Match]:
        """Top-``k`` gallery identities for the largest face in ``image`` (``face="error"``: refuse a
        photo with several faces; for every face use :meth:`iter_faces` and ``gallery.search``);
        ``accepted`` marks scores at or above :attr:`threshold`."""
        if face == "all":
            raise InvalidInputError("identify answers for one face: use iter_faces(face='all') and gallery.search")
        emb = self.embed(image, aligned=aligned, face=face)
        return [Match(m.name, m.score, m.score >= self.threshold) for m in self.gallery.search(emb[0], k)[0]]


def _warn_largest(name: str, found: int) -> None:
    log.warning("%s: %d faces found, using the largest (face='all' or 'error' to choose)", name, found)
