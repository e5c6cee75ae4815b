"""Face detection and alignment API: ``FaceDetector.detect(image) -> [Face]``, ``align(image) -> [AlignedFace]``."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np
import torch

from facelivt.data.align import align_face
from facelivt.data.decode import ImageSource
from facelivt.devices import resolve_device
from facelivt.errors import FaceLiVTError, InvalidInputError
from facelivt.inference.images import DEFAULT_MAX_SIDE, LoadedImage, open_image
from facelivt.inference.mtcnn import detect_faces, load_mtcnn_nets

Select = Literal["largest", "all"]


class NoFaceError(FaceLiVTError, ValueError):
    """No face was found in an image."""


class SeveralFacesError(FaceLiVTError, ValueError):
    """A photo holds several faces where one was asked for (``found``: how many)."""

    def __init__(self, message: str, found: int = 2) -> None:
        super().__init__(message)
        self.found = int(found)


@dataclass(frozen=True, eq=False)
class Face:
    """One detection: ``box`` [x1, y1, x2, y2], ``score`` in (0, 1], ``points`` 5x2 (x, y) in pixels of
    the image as given (left eye, right eye, nose, left and right mouth corners, as seen in the image)."""

    box: np.ndarray
    score: float
    points: np.ndarray

    @property
    def area(self) -> float:
        return float(max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1]))

    def scaled(self, factor: float) -> "Face":
        """The same face in an image resized by ``factor``."""
        return Face(self.box * factor, self.score, self.points * factor)

    def clipped(self, width: int, height: int) -> "Face":
        """The same face with its box clipped to a ``width`` x ``height`` image (MTCNN's boxes may reach
        past the border; the landmarks are kept)."""
        return Face(np.clip(self.box, 0.0, [width, height, width, height]), self.score, self.points)

    def to_dict(self) -> dict:
        """JSON-friendly form, same keys as the reference detections file."""
        return {
            "box": [round(float(v), 2) for v in self.box],
            "score": round(float(self.score), 5),
            "points": [[round(float(x), 2), round(float(y), 2)] for x, y in self.points],
        }


@dataclass
class AlignedFace:
    """A face warped onto the ArcFace template: ``image`` (size x size x 3 uint8 RGB) and its detection
    (in the coordinates of the image that was aligned)."""

    image: np.ndarray
    face: Face
    source: LoadedImage | None = field(default=None, repr=False)

    def as_given(self) -> Face:
        """The detection in pixels of the image as given (not of the detector's downscaled copy of a
        large one), its box clipped to that image."""
        source, face = self.source, self.face
        if source is None:
            return face
        if source.downscaled:
            face = face.scaled(1.0 / source.scale)
        width, height = source.original_size
        return face.clipped(width, height)


class FaceDetector:
    """MTCNN detector with the reference defaults (minimum face 20 px, thresholds 0.6/0.7/0.7, factor 0.709).

    ``weights``: folder with pnet.pt/rnet.pt/onet.pt (default: ``$FACELIVT_MTCNN_WEIGHTS``, then the
    installed facenet-pytorch package). Images may be paths, encoded bytes, PIL images or uint8 RGB arrays.
    ``max_pixels``: larger images are refused before decoding (default: the project's limit,
    ``$FACELIVT_MAX_PIXELS`` or 80 MP); ``max_side``: larger ones are downscaled before detection.

    ``pad``: when no face is found, look again with a black border of ``pad`` x the longest side
    around the image; with ``pad_always`` every image is searched with the border. MTCNN misses
    faces that fill the whole frame, as in tightly cropped sets (Extended Yale B: 36% found as is,
    over 99% with ``pad=0.3, pad_always=True``). Coordinates always refer to the image as given.
    """

    def __init__(
        self,
        weights: str | os.PathLike | None = None,
        *,
        min_face_size: float = 20.0,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
        factor: float = 0.709,
        device: str | torch.device = "cpu",
        max_pixels: int | None = None,
        max_side: int | None = DEFAULT_MAX_SIDE,
        pad: float = 0.0,
        pad_always: bool = False,
    ) -> None:
        if min_face_size < 12:
            raise InvalidInputError(f"min_face_size must be at least 12 pixels, got {min_face_size}")
        if len(thresholds) != 3 or not all(0.0 <= t < 1.0 for t in thresholds):
            raise InvalidInputError(f"thresholds must be three probabilities in [0, 1), got {thresholds}")
        if not 0.0 < factor < 1.0:
            raise InvalidInputError(f"factor must be in (0, 1), got {factor}")
        if not 0.0 <= pad <= 2.0:
            raise InvalidInputError(f"pad must be a fraction of the image side in [0, 2], got {pad}")
        self.device = resolve_device(device)
        self.nets = tuple(net.to(self.device) for net in load_mtcnn_nets(weights))
        self.min_face_size = float(min_face_size)
        self.thresholds = tuple(float(t) for t in thresholds)
        self.factor = float(factor)
        self.max_pixels = max_pixels
        self.max_side = max_side
        self.pad = float(pad)
        self.pad_always = bool(pad_always)

    def load(self, image: ImageSource) -> LoadedImage:
        """Read an image with this detector's size limits (see :func:`open_image`)."""
        return open_image(image, max_pixels=self.max_pixels, max_side=self.max_side)

    def detect_array(self, rgb: np.ndarray) -> list[Face]:
        """Detect faces in an HxWx3 uint8 RGB array; largest box first."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise InvalidInputError(f"expected an HxWx3 uint8 RGB array, got {rgb.dtype} array of shape {rgb.shape}")
        faces = [] if self.pad_always and self.pad > 0 else self._cascade(rgb)
        if not faces and self.pad > 0:
            border = max(1, int(round(self.pad * max(rgb.shape[:2]))))
            padded = cv2.copyMakeBorder(rgb, border, border, border, border, cv2.BORDER_CONSTANT, value=(0, 0, 0))
            shift = np.array([border, border], dtype=np.float64)
            faces = [
                Face(f.box - np.tile(shift, 2), f.score, f.points - shift) for f in self._cascade(padded)
            ]
        return faces

    def _cascade(self, rgb: np.ndarray) -> list[Face]:
        if not (rgb.flags.writeable and rgb.flags.c_contiguous):
            rgb = np.array(rgb, order="C")  # torch wants a writable buffer
        tensor = torch.from_numpy(rgb).to(self.device).permute(2, 0, 1)  # uint8: exact int32 sums
        det = detect_faces(self.nets, tensor, self.min_face_size, self.thresholds, self.factor)
        return [
            Face(det.boxes[i].astype(np.float64), float(det.scores[i]), det.points[i].astype(np.float64))
            for i in range(len(det.scores))
        ]

    def detect(self, image: ImageSource) -> list[Face]:
        """Faces in ``image``, largest first, in the coordinates of the image as given (before any
        downscaling of huge images). An empty list means no face was found."""
        loaded = self.load(image)
        faces = self.detect_array(loaded.image)
        return [f.scaled(1.0 / loaded.scale) for f in faces] if loaded.downscaled else faces

    def align(self, image: ImageSource, select: Select = "largest", size: int = 112) -> list[AlignedFace]:
        """Detect and align faces to the ArcFace template (``size`` x ``size``).

        ``select="largest"`` returns the largest face only, ``"all"`` every face (largest first).
        Raises :class:`NoFaceError` when no face is found.
        """
        if select not in ("largest", "all"):
            raise InvalidInputError(f"select must be 'largest' or 'all', got {select!r}")
        loaded = self.load(image)
        faces = self.detect_array(loaded.image)
        if not faces:
            raise NoFaceError(f"{loaded.name}: no face found")
        if select == "largest":
            faces = faces[:1]
        return [AlignedFace(align_face(loaded.image, f.points, size), f, loaded) for f in faces]
