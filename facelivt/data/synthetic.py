"""A deterministic synthetic-identity data set for smoke tests and demos.

Every identity is a procedurally drawn face-like layout (background, hair, face
oval with its own smooth skin texture, eyes, brows, nose, mouth; sizes, places and
colours drawn from the identity's random stream). Every image is a perturbed view
of it: small rotation / scale / shift, brightness and contrast change, pixel
noise. Identities differ far more than views do, so a small network learns to tell
them apart in minutes on a CPU. Images are rendered on demand from
``(seed, identity, view)``, so the set costs no memory and any item can be
regenerated in any process.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from facelivt.errors import InvalidInputError
from .imaging import Transform, check_index, image_to_sample, resolve_transform
from .transforms import INPUT_SIZE

_S = INPUT_SIZE
_YY, _XX = np.mgrid[0:_S, 0:_S].astype(np.float32) + 0.5


def _ellipse(cx: float, cy: float, ax: float, ay: float, angle: float = 0.0) -> np.ndarray:
    """Soft (about one pixel anti-aliased) filled ellipse mask in [0, 1]."""
    c, s = np.cos(angle), np.sin(angle)
    dx, dy = _XX - cx, _YY - cy
    u = (dx * c + dy * s) / ax
    v = (-dx * s + dy * c) / ay
    r = np.sqrt(u * u + v * v)
    return np.clip((1.0 - r) * min(ax, ay) + 0.5, 0.0, 1.0)


def _blend(image: np.ndarray, colour: np.ndarray, mask: np.ndarray) -> np.ndarray:
    m = mask[:, :, None]
    return image * (1.0 - m) + colour * m


def render_identity(seed: int, identity: int) -> np.ndarray:
    """The canonical (unperturbed) head of ``identity``: float32 HxWx4, RGB in [0, 255]
    and a coverage mask in [0, 1] (the background is drawn per view)."""
    rng = np.random.default_rng([int(seed), int(identity), 0x5EED])
    u = rng.uniform
    image = np.zeros((_S, _S, 3), np.float32)

    cx, cy = 56 + u(-3, 3), 60 + u(-3, 3)
    ax, ay = u(28, 38), u(36, 46)
    hair = u(0, 200, 3)
    hair_mask = _ellipse(cx, cy - u(6, 14), ax + u(2, 6), ay + u(0, 6))
    image = _blend(image, hair, hair_mask)

    skin = u(60, 240, 3)
    texture = np.zeros((_S, _S), np.float32)
    for _ in range(3):
        f = u(0.04, 0.15)
        a = u(0, np.pi)
        texture += np.sin(f * (_XX * np.cos(a) + _YY * np.sin(a)) + u(0, 2 * np.pi)).astype(np.float32)
    tint = u(-1, 1, 3) * 12
    face_colour = skin + texture[:, :, None] * tint
    face_mask = _ellipse(cx, cy + 4, ax, ay - u(0, 6))
    image = _blend(image, face_colour, face_mask)
    coverage = np.maximum(hair_mask, face_mask)

    eye_y = cy - u(6, 14)
    sep = u(11, 18)
    eye_w, eye_h = u(4, 8), u(2.5, 4.5)
    iris = u(0, 160, 3)
    iris_r = u(1.8, 3.2)
    brow = u(0, 120, 3)
    brow_dy, brow_tilt, brow_t = u(6, 11), u(-0.35, 0.35), u(1.0, 2.5)
    for side in (-1, 1):
        ex = cx + side * sep
        image = _blend(image, np.array([245.0, 245.0, 245.0]), _ellipse(ex, eye_y, eye_w, eye_h))
        image = _blend(image, iris, _ellipse(ex, eye_y, iris_r, iris_r))
        image = _blend(image, brow, _ellipse(ex, eye_y - brow_dy, eye_w + 2, brow_t, side * brow_tilt))

    nose_len, nose_w = u(8, 16), u(2, 5)
    image = _blend(image, skin * u(0.55, 0.85), _ellipse(cx, eye_y + 6 + nose_len / 2, nose_w, nose_len / 2))

    mouth_y = min(eye_y + u(26, 36), cy + ay - 8)
    mouth_w, mouth_h = u(7, 15), u(1.5, 5)
    mouth = u(40, 220, 3) * np.array([1.0, 0.6, 0.6])
    image = _blend(image, mouth, _ellipse(cx, mouth_y, mouth_w, mouth_h, u(-0.15, 0.15)))
    return np.concatenate([image, coverage[:, :, None]], axis=2).astype(np.float32)


def render_view(base: np.ndarray, seed: int, identity: int, view: int) -> np.ndarray:
    """A perturbed view of a canonical head (from :func:`render_identity`) on a
    random background -> uint8 HxWx3."""
    rng = np.random.default_rng([int(seed), int(identity), int(view) + 1, 0x71E7])
    angle = rng.uniform(-6, 6)
    scale = rng.uniform(0.94, 1.06)
    matrix = cv2.getRotationMatrix2D((_S / 2, _S / 2), angle, scale)
    matrix[:, 2] += rng.uniform(-3, 3, 2)
    head = cv2.warpAffine(base, matrix, (_S, _S), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    background = rng.uniform(0, 255, 3) + rng.uniform(-40, 40, 3) * ((_YY / _S) - 0.5)[:, :, None]
    warped = _blend(background.astype(np.float32), head[:, :, :3] / np.maximum(head[:, :, 3:], 1e-3), head[:, :, 3])
    contrast, brightness = rng.uniform(0.8, 1.2), rng.uniform(-20, 20)
    out = (warped - 128.0) * contrast + 128.0 + brightness
    out = out + rng.normal(0.0, 6.0, out.shape)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


class SyntheticIdentities(torch.utils.data.Dataset):
    """``num_identities * images_per_identity`` procedural faces; item i shows identity
    ``i // images_per_identity`` (its label), view ``i % images_per_identity``.

    Items are ``(3x112x112 float tensor, ``(pixel / 255 - 0.5) / 0.5``, int label)``;
    ``transform``: None, ``"train"`` (random horizontal flip) or a callable on the
    tensor. :meth:`image` gives the uint8 RGB image (for writing to disk).
    The same ``seed`` always gives the same pixels.
    """

    def __init__(
        self,
        num_identities: int = 64,
        images_per_identity: int = 16,
        seed: int = 0,
        transform: Transform = None,
    ) -> None:
        if int(num_identities) < 1:
            raise InvalidInputError(f"num_identities must be >= 1, got {num_identities}")
        if int(images_per_identity) < 1:
            raise InvalidInputError(f"images_per_identity must be >= 1, got {images_per_identity}")
        self.num_identities = int(num_identities)
        self.images_per_identity = int(images_per_identity)
        self.seed = int(seed)
        self.transform = resolve_transform(transform)
        self.num_classes = self.num_identities
        self.labels = np.repeat(np.arange(self.num_identities, dtype=np.int64), self.images_per_identity)
        self.classes = [f"id{k:05d}" for k in range(self.num_identities)]
        self._cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return self.num_identities * self.images_per_identity

    def _base(self, identity: int) -> np.ndarray:
        base = self._cache.get(identity)
        if base is None:
            base = render_identity(self.seed, identity)
            if len(self._cache) >= 256:
                self._cache.pop(next(iter(self._cache)))
            self._cache[identity] = base
        return base

    def image(self, index: int) -> np.ndarray:
        """Image ``index`` as RGB uint8 112x112x3."""
        identity, view = divmod(check_index(index, len(self)), self.images_per_identity)
        return render_view(self._base(identity), self.seed, identity, view)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.image(index)
        index = int(index) % len(self)
        return image_to_sample(image, self.transform), int(self.labels[index])

    def __repr__(self) -> str:
        return (
            f"SyntheticIdentities(num_identities={self.num_identities}, "
            f"images_per_identity={self.images_per_identity}, seed={self.seed})"
        )
