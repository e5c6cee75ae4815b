"""Image helpers shared by the data sets: decoding (through the one decoder, :mod:`.decode`),
RGB/112 conversion, the train augmentation and the bookkeeping of undecodable samples."""
from __future__ import annotations

import logging
from typing import Callable, Union

import cv2
import numpy as np
import torch

from facelivt.errors import FaceLiVTError, InvalidInputError
from .decode import ImageSource, decode_rgb
from .transforms import INPUT_SIZE, to_tensor

log = logging.getLogger(__name__)

Transform = Union[None, str, Callable[[torch.Tensor], torch.Tensor]]


class TooManyBadSamplesError(FaceLiVTError, RuntimeError):
    """More samples of a data set are corrupt or undecodable than its ``max_bad_fraction`` allows."""


def ensure_rgb(image: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """Grey (HxW or HxWx1) / RGB / RGBA uint8 -> RGB uint8 ``size x size x 3``.

    Alpha is dropped; images of another size are resized (area filter when
    shrinking, bilinear when enlarging), which only makes sense for crops that
    are already aligned.
    """
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise InvalidInputError(f"expected a uint8 image, got dtype {image.dtype}")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.ndim == 3 and image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    if image.ndim != 3 or image.shape[2] != 3:
        raise InvalidInputError(f"cannot make an RGB image from an array of shape {image.shape}")
    if image.shape[0] != size or image.shape[1] != size:
        shrink = image.shape[0] > size or image.shape[1] > size
        interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        image = cv2.resize(image, (size, size), interpolation=interp)
    if not image.flags.writeable or not image.flags.c_contiguous:
        image = np.array(image, copy=True, order="C")
    return image


def decode_image(source: ImageSource, size: int = INPUT_SIZE, name: str | None = None) -> np.ndarray:
    """An image file or encoded bytes -> RGB uint8 ``size x size x 3`` (see :mod:`.decode` for the
    pixel limit and the mode conversion); :class:`.decode.ImageLoadError` if it cannot be used."""
    return ensure_rgb(decode_rgb(source, name=name), size)


def encode_image(image: np.ndarray, *, png: bool = False, quality: int = 95) -> bytes:
    """RGB uint8 HxWx3 -> JPEG (``quality``) or PNG bytes."""
    if not 1 <= int(quality) <= 100:
        raise InvalidInputError(f"JPEG quality must be in 1..100, got {quality}")
    bgr = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR)
    if png:
        ok, buf = cv2.imencode(".png", bgr)
    else:
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise InvalidInputError("image encoding failed")
    return buf.tobytes()


class RandomHorizontalFlip:
    """Flip a CxHxW tensor left-right with probability ``p``.

    Uses torch's global generator, which DataLoader seeds differently in every
    worker, so workers do not repeat each other's flips.
    """

    def __init__(self, p: float = 0.5) -> None:
        if not 0.0 <= p <= 1.0:
            raise InvalidInputError(f"flip probability must be in [0, 1], got {p}")
        self.p = p

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.p > 0 and torch.rand(()).item() < self.p:
            return torch.flip(tensor, dims=[-1])
        return tensor

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


def resolve_transform(transform: Transform) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """``None`` -> no augmentation; ``"train"`` -> random horizontal flip;
    a callable is applied to the normalised 3x112x112 tensor and must return a tensor."""
    if transform is None:
        return None
    if isinstance(transform, str):
        if transform == "train":
            return RandomHorizontalFlip(0.5)
        if transform in ("none", "eval", "test"):
            return None
        raise InvalidInputError(f"unknown transform {transform!r}: use None, 'train' or a callable")
    if callable(transform):
        return transform
    raise InvalidInputError(f"transform must be None, 'train' or a callable, got {type(transform).__name__}")


def image_to_sample(image: np.ndarray, transform: Callable | None) -> torch.Tensor:
    """RGB uint8 112x112x3 -> normalised tensor, augmented when a transform is set."""
    tensor = to_tensor(image)
    if transform is not None:
        tensor = transform(tensor)
    return tensor


def check_index(index: int, length: int) -> int:
    """``index`` as a non-negative position (negative counts from the end); IndexError if out of range."""
    index = int(index)
    if index < 0:
        index += length
    if not 0 <= index < length:
        raise IndexError(f"index {index} out of range for a data set of {length} images")
    return index


class BadSampleTracker:
    """Counts undecodable samples of a data set and enforces a maximum bad fraction.

    A sample is *seen* the first time it is read; a bad one is warned about once
    and remembered so it is never decoded again. The fraction ``bad / seen`` is
    checked once at least ``min(min_reads, dataset_len)`` distinct samples were
    seen (so one early bad record does not stop a run over millions), and a
    RuntimeError is raised when it exceeds ``max_bad_fraction``. With several
    DataLoader workers, each worker keeps its own counts over the samples it read.
    """

    def __init__(self, length: int, max_bad_fraction: float, min_reads: int, name: str) -> None:
        if not 0.0 <= max_bad_fraction <= 1.0:
            raise InvalidInputError(f"max_bad_fraction must be in [0, 1], got {max_bad_fraction}")
        if min_reads < 1:
            raise InvalidInputError(f"min_reads must be >= 1, got {min_reads}")
        self.length = int(length)
        self.max_bad_fraction = float(max_bad_fraction)
        self.min_reads = int(min_reads)
        self.name = name
        self.seen = np.zeros(self.length, dtype=bool)
        self.num_seen = 0
        self.bad: set[int] = set()

    def is_bad(self, index: int) -> bool:
        return index in self.bad

    def mark_good(self, index: int) -> None:
        if not self.seen[index]:
            self.seen[index] = True
            self.num_seen += 1
            if self.bad and self.num_seen == min(self.min_reads, self.length):
                self.check()

    def mark_bad(self, index: int, what: str, reason: str) -> None:
        if index not in self.bad:
            self.bad.add(index)
            log.warning("%s: skipping bad sample %s: %s", self.name, what, reason)
        self.mark_good(index)  # counts as seen
        self.check()

    def check(self) -> None:
        needed = min(self.min_reads, self.length)
        if self.num_seen >= needed and self.num_seen > 0:
            fraction = len(self.bad) / self.num_seen
            if fraction > self.max_bad_fraction:
                raise TooManyBadSamplesError(
                    f"{self.name}: {len(self.bad)} of {self.num_seen} samples read so far are corrupt or "
                    f"undecodable ({fraction:.2%}), more than max_bad_fraction={self.max_bad_fraction:.2%}; "
                    f"check the data (or raise max_bad_fraction)"
                )

    def first_good(self, index: int, load: Callable[[int], tuple], errors: tuple[type[Exception], ...], describe: Callable[[int], str], exhausted: str) -> tuple:
        """``load(j)`` for the first sample ``j`` from ``index`` on (wrapping round) that decodes.

        Samples raising one of ``errors`` are marked bad (``describe(j)`` names them in the warning)
        and skipped; TooManyBadSamplesError(``exhausted``) when none is left."""
        for step in range(self.length):
            j = (index + step) % self.length
            if self.is_bad(j):
                continue
            try:
                item = load(j)
            except errors as exc:
                self.mark_bad(j, describe(j), str(exc))
                continue
            self.mark_good(j)
            return item
        raise TooManyBadSamplesError(exhausted)

    @property
    def count(self) -> int:
        return len(self.bad)
