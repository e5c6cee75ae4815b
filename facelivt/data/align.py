"""Five-point face alignment onto the ArcFace 112x112 template.

A least-squares similarity transform (rotation, uniform scale, translation; Umeyama 1991)
maps the detected landmarks onto the template; the image is warped with OpenCV.
"""
from __future__ import annotations

import cv2
import numpy as np

from facelivt.errors import InvalidInputError

ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)


def template(size: int = 112) -> np.ndarray:
    """The ArcFace template scaled to a ``size`` x ``size`` crop."""
    return ARCFACE_TEMPLATE * (size / 112.0)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 matrix M of the similarity that best maps ``src`` points onto ``dst`` (least squares)."""
    src = np.asarray(src, dtype=np.float64).reshape(-1, 2)
    dst = np.asarray(dst, dtype=np.float64).reshape(-1, 2)
    if src.shape != dst.shape or src.shape[0] < 2:
        raise InvalidInputError(f"need matching point sets of at least 2 points, got {src.shape} and {dst.shape}")
    if not (np.isfinite(src).all() and np.isfinite(dst).all()):
        raise InvalidInputError("landmarks contain NaN or infinite values")
    n = src.shape[0]
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s_c, d_c = src - mu_s, dst - mu_d
    var_s = (s_c**2).sum() / n
    if var_s <= 1e-12:
        raise InvalidInputError("degenerate landmarks: all points coincide")
    cov = d_c.T @ s_c / n
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1.0
    rot = u @ np.diag(d) @ vt
    scale = (sig * d).sum() / var_s
    t = mu_d - scale * rot @ mu_s
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = t
    return m


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int = 112) -> np.ndarray:
    """Warp ``image`` (HxWxC uint8) so that its 5 ``landmarks`` (5x2, x/y in pixels) land on the
    ArcFace template; returns a ``size`` x ``size`` crop."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.shape != (5, 2):
        raise InvalidInputError(f"expected 5x2 landmarks, got shape {landmarks.shape}")
    m = similarity_transform(landmarks, template(size))
    return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def transform_points(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine matrix to Nx2 points."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return points @ m[:, :2].T + m[:, 2]
