"""FaceRecognizer: detect, align, embed, verify and search faces with a FaceLiVT model.

Embeddings follow the evaluation protocol (SPEC section 6): the embedding of a crop plus that of
its horizontal flip, L2-normalised. Scores are cosine similarities in [-1, 1]; two faces are the
same person when the score reaches ``threshold`` (calibrate it with :meth:`FaceRecognizer.calibrate`).
"""
from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from facelivt.data.transforms import INPUT_SIZE, to_tensor_batch
from facelivt.devices import resolve_device
from facelivt.inference.calibration import Calibration, calibrate_scores, read_pairs_list
from facelivt.inference.detector import FaceDetector, Select
from facelivt.inference.gallery import Gallery, Match
from facelivt.inference.images import ImageSource, load_image

#: A generic starting point for well-trained ArcFace/CosFace-style models; calibrate for real use.
DEFAULT_THRESHOLD = 0.3


def fingerprint_file(path: str | os.PathLike) -> str:
    """First 16 hex digits of the file's SHA-256."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


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

    ``model``: a model name (see ``facelivt.list_models()``) or an ``nn.Module`` mapping Bx3x112x112
    normalised crops to BxD embeddings. ``weights``: this project's safetensors or the authors' ``.pt``
    (None gives random weights: only useful for tests). ``deploy`` loads the reparameterized form.
    ``detector``: a :class:`FaceDetector`, or None to build one lazily from ``mtcnn_weights``.
    ``threshold``: cosine score at which :meth:`verify` says "same" (default :data:`DEFAULT_THRESHOLD`,
    replaced by a loaded gallery's calibrated threshold).
    """

    def __init__(
        self,
        model: str | nn.Module = "facelivt_s",
        weights: str | os.PathLike | None = None,
        *,
        device: str | torch.device = "cpu",
        deploy: bool = True,
        detector: FaceDetector | None = None,
        mtcnn_weights: str | os.PathLike | None = None,
        threshold: float | None = None,
        flip: bool = True,
        batch_size: int = 64,
        **model_overrides,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.device = resolve_device(device)
        if isinstance(model, nn.Module):
            if weights is not None:
                raise ValueError("weights cannot be given together with a model instance")
            self.model_name = type(model).__name__
            self.model = model.to(self.device).eval()
            self.weights_fingerprint = fingerprint_module(self.model)
        else:
            from facelivt.models import load_model  # the model library

            if weights is None:
                warnings.warn(
                    f"FaceRecognizer({model!r}) has no weights: embeddings of a random network are meaningless",
                    stacklevel=2,
                )
            elif not Path(weights).is_file():
                raise FileNotFoundError(f"model weights not found: {weights}")
            self.model_name = str(model)
            self.model = load_model(model, weights, deploy=deploy, device=str(self.device), **model_overrides).eval()
            self.weights_fingerprint = (
                fingerprint_file(weights) if weights is not None else fingerprint_module(self.model)
            )
        self.model.requires_grad_(False)
        self._detector = detector
        self._mtcnn_weights = mtcnn_weights
        self.threshold = DEFAULT_THRESHOLD if threshold is None else float(threshold)
        self.threshold_source = "default" if threshold is None else "given"
        self.flip = bool(flip)
        self.batch_size = int(batch_size)
        self.gallery = self._new_gallery()

    # ------------------------------------------------------------------ detection / alignment
    @property
    def detector(self) -> FaceDetector:
        """The face detector (loaded on first use)."""
        if self._detector is None:
            self._detector = FaceDetector(self._mtcnn_weights, device=self.device)
        return self._detector

    def detect(self, image: ImageSource):
        """Faces in ``image`` (see :meth:`FaceDetector.detect`)."""
        return self.detector.detect(image)

    def align(self, image: ImageSource, select: Select = "largest") -> list[np.ndarray]:
        """112x112 aligned crops (uint8 RGB) of the largest face, or of all faces with ``select="all"``.
        Raises ``NoFaceError`` when the image holds no face."""
        return [a.image for a in self.detector.align(image, select=select, size=INPUT_SIZE)]

    def _crop(self, image: ImageSource, aligned: bool) -> np.ndarray:
        if not aligned:
            return self.align(image)[0]
        crop = load_image(image)
        if crop.shape[:2] != (INPUT_SIZE, INPUT_SIZE):
            raise ValueError(
                f"aligned input must be {INPUT_SIZE}x{INPUT_SIZE}, got {crop.shape[1]}x{crop.shape[0]} "
                f"({image if isinstance(image, (str, os.PathLike)) else 'array'}); leave aligned=False to detect and align"
            )
        return crop

    # ------------------------------------------------------------------ embeddings
    @torch.inference_mode()
    def embed_aligned(self, crops: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Embeddings (N x D, L2-normalised, float32) of aligned 112x112 uint8 RGB crops."""
        crops = np.asarray(crops)
        if crops.ndim == 3:
            crops = crops[None]
        if crops.ndim != 4 or crops.shape[1:] != (INPUT_SIZE, INPUT_SIZE, 3) or crops.dtype != np.uint8:
            raise ValueError(f"expected Nx{INPUT_SIZE}x{INPUT_SIZE}x3 uint8 crops, got {crops.dtype} {crops.shape}")
        out = []
        for start in range(0, len(crops), self.batch_size):
            x = to_tensor_batch(crops[start : start + self.batch_size]).to(self.device)
            e = self.model(x)
            if self.flip:
                e = e + self.model(torch.flip(x, dims=[3]))
            out.append(torch.nn.functional.normalize(e.float(), dim=1).cpu().numpy())
        if not out:
            return np.zeros((0, self.embedding_size), np.float32)
        return np.concatenate(out)

    @property
    def embedding_size(self) -> int:
        """Embedding dimension D (found by running the model once)."""
        if not hasattr(self, "_dim"):
            with torch.inference_mode():
                x = torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE, device=self.device)
                self._dim = int(self.model(x).shape[1])
        return self._dim

    def embed(
        self, images: ImageSource | Iterable[ImageSource], *, aligned: bool = False, progress: bool = False
    ) -> np.ndarray:
        """Embeddings (N x D, L2-normalised) of the largest face of each image, batched.

        ``aligned=True``: the images are already 112x112 aligned crops. Raises ``NoFaceError`` or
        ``ImageLoadError`` for the first image that fails (use :meth:`iter_embed` to go past them).
        """
        if isinstance(images, (str, os.PathLike, bytes, np.ndarray)) or hasattr(images, "mode"):
            if isinstance(images, np.ndarray) and images.ndim == 4:
                images = list(images)
            else:
                images = [images]
        chunks = []
        for _, emb, error in self.iter_embed(images, aligned=aligned, progress=progress):
            if error is not None:
                raise error
            chunks.append(emb)
        return np.stack(chunks) if chunks else np.zeros((0, self.embedding_size), np.float32)

    def iter_embed(
        self, images: Iterable[ImageSource], *, aligned: bool = False, progress: bool = False, desc: str = "embed"
    ) -> Iterator[tuple[int, np.ndarray | None, Exception | None]]:
        """Yield ``(index, embedding, None)`` per image, or ``(index, None, error)`` for images that
        cannot be read or hold no face; the network runs on batches of ``batch_size`` crops."""
        items = list(images)
        bar = tqdm(total=len(items), desc=desc, unit="img", disable=not progress)
        pending: list[tuple[int, np.ndarray]] = []

        def flush() -> Iterator[tuple[int, np.ndarray, None]]:
            emb = self.embed_aligned(np.stack([c for _, c in pending]))
            for (i, _), e in zip(pending, emb):
                yield i, e, None
            pending.clear()

        try:
            for i, item in enumerate(items):
                try:
                    pending.append((i, self._crop(item, aligned)))
                except (ValueError, FileNotFoundError) as exc:  # ImageLoadError, NoFaceError, ...
                    yield i, None, exc
                bar.update(1)
                if len(pending) >= self.batch_size:
                    yield from flush()
            if pending:
                yield from flush()
        finally:
            bar.close()

    # ------------------------------------------------------------------ verification
    def similarity(self, a: np.ndarray, b: np.ndarray) -> float:
        """Cosine similarity of two embeddings."""
        a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
        return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))

    def verify(self, a: ImageSource, b: ImageSource, *, aligned: bool = False) -> tuple[float, bool]:
        """``(score, same)``: cosine similarity of the two faces' embeddings and ``score >= threshold``."""
        emb = self.embed([a, b], aligned=aligned)
        score = self.similarity(emb[0], emb[1])
        return score, score >= self.threshold

    def calibrate(
        self,
        pairs: str | os.PathLike | Sequence[tuple[ImageSource, ImageSource, bool]],
        *,
        target_far: float | None = None,
        aligned: bool = False,
        progress: bool = False,
    ) -> Calibration:
        """Set :attr:`threshold` from labelled pairs and return how it does on them.

        ``pairs``: a ``.bin`` verification set (aligned crops), a pairs-list text file (see
        :mod:`facelivt.inference.calibration`) or a sequence of ``(image_a, image_b, same)``;
        ``aligned`` says whether the pairs' images are aligned crops (a ``.bin`` always is).
        The threshold maximises accuracy, or keeps the false accept rate at most ``target_far``.
        Pairs whose images fail (unreadable, no face) are left out; the count is in ``num_pairs``.
        """
        if isinstance(pairs, (str, os.PathLike)) and Path(pairs).suffix.lower() == ".bin":
            from facelivt.evaluation.binset import read_bin

            binset = read_bin(pairs)
            crops = np.concatenate(list(binset.iter_batches(self.batch_size, size=INPUT_SIZE)))
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
                raise ValueError(f"no usable pair in {source}: every pair had an unreadable image or no face")
            result = calibrate_scores(np.array(scores), np.array(labels), target_far)
        self.threshold = result.threshold
        self.threshold_source = f"{result.rule} on {source}"
        return result

    # ------------------------------------------------------------------ gallery
    def _new_gallery(self) -> Gallery:
        return Gallery(
            self.embedding_size,
            metadata={"model": self.model_name, "weights_fingerprint": self.weights_fingerprint, "flip": self.flip},
        )

    def enroll(
        self, name: str, images: ImageSource | Iterable[ImageSource], *, aligned: bool = False, progress: bool = False
    ) -> int:
        """Embed ``images`` (their largest face) and add them to identity ``name``; returns how many.
        Fails (and enrols nothing) when any image cannot be used."""
        emb = self.embed(images, aligned=aligned, progress=progress)
        if len(emb) == 0:
            raise ValueError(f"no images given to enroll {name!r}")
        self.gallery.enroll_embeddings(name, emb)
        return len(emb)

    def identify(self, image: ImageSource, k: int = 5, *, aligned: bool = False) -> list[Match]:
        """Top-``k`` gallery identities for the largest face in ``image``; ``accepted`` marks scores
        at or above :attr:`threshold`."""
        emb = self.embed(image, aligned=aligned)
        return [Match(m.name, m.score, m.score >= self.threshold) for m in self.gallery.search(emb[0], k)[0]]

    def save_gallery(self, folder: str | os.PathLike) -> Path:
        """Save the gallery (and the threshold) to ``folder``."""
        self.gallery.metadata.update(threshold=self.threshold, threshold_source=self.threshold_source)
        return self.gallery.save(folder)

    def load_gallery(self, folder: str | os.PathLike, *, check: bool = True) -> Gallery:
        """Load a gallery saved by :meth:`save_gallery`. With ``check``, a gallery made with another
        model, other weights or another flip setting is refused (its embeddings are not comparable).
        The gallery's saved threshold is used unless this recognizer's threshold was calibrated."""
        gallery = Gallery.load(folder)
        meta = gallery.metadata
        if check:
            for key, mine in (
                ("model", self.model_name),
                ("weights_fingerprint", self.weights_fingerprint),
                ("flip", self.flip),
            ):
                if key in meta and meta[key] != mine:
                    raise ValueError(
                        f"gallery {folder} was built with {key}={meta[key]!r} but this recognizer has {mine!r}: "
                        "embeddings from different models are not comparable"
                    )
            if gallery.dim != self.embedding_size:
                raise ValueError(f"gallery {folder} holds {gallery.dim}-d embeddings, the model gives {self.embedding_size}-d")
        if "threshold" in meta and self.threshold_source == "default":
            self.threshold = float(meta["threshold"])
            self.threshold_source = str(meta.get("threshold_source", f"gallery {folder}"))
        self.gallery = gallery
        return gallery
