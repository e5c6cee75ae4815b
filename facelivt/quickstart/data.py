"""Quickstart data: faces held in memory (synthetic identities or an image folder), the identity
split into training and held-out identities, and the held-out verification pairs.

Everything the quickstart trains on and evaluates is decoded once into a uint8 array, so the
training loop reads no files and renders nothing (a few thousand 112x112 faces are ~40 MB per
thousand images).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from tqdm import tqdm

from facelivt.data import SyntheticIdentities, split_identities, to_tensor
from facelivt.data.folder import load_image, scan_image_folder
from facelivt.data.imaging import DecodeError
from facelivt.data.transforms import INPUT_SIZE
from facelivt.inference import FaceDetector, NoFaceError
from facelivt.inference.folders import save_rgb
from facelivt.training.heldout import build_pairs

PathLike = str | os.PathLike


class FaceArray(Dataset):
    """Aligned faces in memory: ``images`` uint8 N x 112 x 112 x 3 RGB, ``labels`` int64 N.

    Items are ``(3x112x112 tensor normalised as SPEC section 1, label)`` like every data set of
    :mod:`facelivt.data`; ``classes[label]`` names the identity.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, classes: list[str], source: str = "") -> None:
        images = np.asarray(images)
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        if images.ndim != 4 or images.shape[1:] != (INPUT_SIZE, INPUT_SIZE, 3) or images.dtype != np.uint8:
            raise ValueError(f"expected uint8 N x {INPUT_SIZE} x {INPUT_SIZE} x 3 images, got {images.dtype} {images.shape}")
        if labels.shape[0] != images.shape[0]:
            raise ValueError(f"{images.shape[0]} images but {labels.shape[0]} labels")
        if labels.size and (labels.min() < 0 or labels.max() >= len(classes)):
            raise ValueError(f"labels must lie in [0, {len(classes)}), got [{labels.min()}, {labels.max()}]")
        self.images = images
        self.labels = labels
        self.classes = list(classes)
        self.num_classes = len(self.classes)
        self.source = source

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return to_tensor(self.images[index]), int(self.labels[index])

    @property
    def num_identities(self) -> int:
        """Identities that have at least one image here."""
        return int(np.unique(self.labels).size)

    def subset(self, indices: np.ndarray) -> "FaceArray":
        """The items ``indices`` (labels and class names unchanged)."""
        indices = np.asarray(indices, dtype=np.int64)
        return FaceArray(self.images[indices], self.labels[indices], self.classes, self.source)

    def __repr__(self) -> str:
        return f"FaceArray({len(self)} images, {self.num_identities} identities, source={self.source!r})"


def synthetic_faces(num_identities: int, images_per_identity: int, seed: int = 0, progress: bool = True) -> FaceArray:
    """Render :class:`facelivt.data.SyntheticIdentities` into memory (deterministic for ``seed``)."""
    ds = SyntheticIdentities(num_identities, images_per_identity, seed=seed)
    images = np.empty((len(ds), INPUT_SIZE, INPUT_SIZE, 3), dtype=np.uint8)
    for i in tqdm(range(len(ds)), desc="render synthetic faces", unit="img", disable=not progress):
        images[i] = ds.image(i)
    return FaceArray(images, ds.labels.copy(), ds.classes, f"synthetic identities (seed {seed})")


@dataclass
class FolderInfo:
    """What :func:`folder_faces` read from an image folder."""

    root: str
    identities_found: int
    images_found: int
    identities_used: int = 0
    images_used: int = 0
    aligned: bool = False  # the images were detected and aligned here (not 112x112 already)
    align_dir: Optional[str] = None
    no_face: int = 0
    unreadable: int = 0
    cached: int = 0  # aligned crops reused from an earlier run
    max_images: int = 0  # the cap that applied
    seconds: float = 0.0
    skipped: list[str] = field(default_factory=list)  # first few problem files

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def needs_alignment(files: list[str], probe: int = 32) -> bool:
    """True unless the first ``probe`` readable files are all 112x112 (already-aligned crops)."""
    seen = 0
    for path in files:
        try:
            with Image.open(path) as im:
                size = im.size
        except (OSError, ValueError, SyntaxError):
            continue
        seen += 1
        if size != (INPUT_SIZE, INPUT_SIZE):
            return True
        if seen >= probe:
            break
    if seen == 0:
        raise ValueError("none of the probed images could be read")
    return False


def select_identities(classes: list[str], samples: list[tuple[str, int]], max_images: int, seed: int) -> list[tuple[str, int]]:
    """Whole identities (in a seeded random order) until ``max_images`` is reached; identities with
    a single image are left out (they give no matched pair and teach little)."""
    by_label: dict[int, list[str]] = {}
    for path, label in samples:
        by_label.setdefault(label, []).append(path)
    order = np.random.default_rng(seed).permutation(len(classes))
    chosen: list[tuple[str, int]] = []
    for label in order:
        files = by_label.get(int(label), [])
        if len(files) < 2:
            continue
        if chosen and len(chosen) + len(files) > max_images:
            continue
        chosen.extend((f, int(label)) for f in files)
        if len(chosen) >= max_images:
            break
    return sorted(chosen, key=lambda s: (s[1], s[0]))


def _align_one(detector, path: str, target: Path) -> np.ndarray:
    """Largest face of ``path`` aligned to 112x112 (written to ``target`` as a cache)."""
    crop = detector.align(path, select="largest", size=INPUT_SIZE)[0].image
    save_rgb(crop, target)
    return crop


def folder_faces(
    root: PathLike,
    *,
    max_images: int = 4000,
    max_align_images: int | None = None,
    seed: int = 0,
    align_dir: PathLike | None = None,
    mtcnn_weights: PathLike | None = None,
    progress: bool = True,
) -> tuple[FaceArray, FolderInfo]:
    """Read ``root/<identity>/<image>`` into memory.

    At most ``max_images`` images are used (whole identities, chosen with ``seed``), and at most
    ``max_align_images`` when they must be aligned first. When the
    images are not 112x112 crops they are detected and aligned with the MTCNN
    :class:`facelivt.inference.FaceDetector` (largest face) and the crops are kept under
    ``align_dir`` (``root`` mirrored), so a second run reuses them. Images without a face or
    unreadable ones are skipped and counted.
    """
    start = time.perf_counter()
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder not found: {root}")
    if max_images < 4 or (max_align_images is not None and max_align_images < 4):
        raise ValueError(f"max_images and max_align_images must be at least 4, got {max_images}, {max_align_images}")
    classes, samples = scan_image_folder(root)
    info = FolderInfo(str(root), len(classes), len(samples))
    align = needs_alignment([p for p, _ in samples])
    cap = min(max_images, max_align_images) if align and max_align_images else max_images
    chosen = select_identities(classes, samples, cap, seed)
    if not chosen:
        raise ValueError(f"{root}: no identity has at least 2 images; verification needs matched pairs")
    detector = None
    if align:
        if align_dir is None:
            raise ValueError(f"{root} holds images that are not 112x112 crops: an align_dir is needed to keep the crops")
        detector = FaceDetector(mtcnn_weights)
        info.aligned, info.align_dir = True, str(align_dir)
    images: list[np.ndarray] = []
    labels: list[int] = []
    desc = "detect + align faces" if align else "load faces"
    for path, label in tqdm(chosen, desc=desc, unit="img", disable=not progress):
        try:
            if detector is None:
                image = load_image(path)
            else:
                rel = Path(path).relative_to(root)
                target = Path(align_dir) / rel.parent / (rel.stem + ".png")
                if target.is_file():
                    image = load_image(target)
                    info.cached += 1
                else:
                    image = _align_one(detector, path, target)
        except (DecodeError, OSError, ValueError) as exc:
            if detector is not None and isinstance(exc, NoFaceError):
                info.no_face += 1
            else:
                info.unreadable += 1
            if len(info.skipped) < 10:
                info.skipped.append(f"{path}: {exc}")
            continue
        images.append(image)
        labels.append(label)
    if not images:
        raise ValueError(f"{root}: no usable face image among {len(chosen)} files")
    used = sorted(set(labels))
    remap = {old: new for new, old in enumerate(used)}
    faces = FaceArray(
        np.stack(images), np.array([remap[l] for l in labels], dtype=np.int64), [classes[l] for l in used], str(root)
    )
    info.identities_used, info.images_used, info.max_images = len(used), len(images), cap
    info.seconds = time.perf_counter() - start
    return faces, info


def split_faces(faces: FaceArray, held_out_fraction: float, seed: int = 0) -> tuple[FaceArray, FaceArray]:
    """(training identities, held-out identities): a disjoint split by identity
    (:func:`facelivt.data.split_identities`)."""
    train_idx, held_idx = split_identities(faces.labels, held_out_fraction, seed)
    if held_idx.size == 0:
        raise ValueError("the held-out split is empty: use a held-out fraction > 0 and at least 2 identities")
    train, held = faces.subset(train_idx), faces.subset(held_idx)
    if train.num_identities < 2:
        raise ValueError(f"only {train.num_identities} training identity left: use more identities")
    return train, held


def limit_per_identity(faces: FaceArray, per_identity: int) -> FaceArray:
    """The first ``per_identity`` images of every identity (all of them when it has fewer)."""
    if per_identity < 2:
        raise ValueError(f"per_identity must be >= 2 (matched pairs), got {per_identity}")
    keep, seen = [], {}
    for i, label in enumerate(faces.labels.tolist()):
        if seen.get(label, 0) < per_identity:
            keep.append(i)
            seen[label] = seen.get(label, 0) + 1
    return faces.subset(np.array(keep, dtype=np.int64))


@dataclass
class VerificationPairs:
    """Held-out verification pairs: ``images`` (the distinct images used, uint8), ``pair_rows``
    (2 x P rows into ``images``: pair k is rows 2k and 2k+1) and ``issame`` (P bools)."""

    images: np.ndarray
    pair_rows: np.ndarray
    issame: np.ndarray
    labels: np.ndarray  # identity of each row of images

    @property
    def num_pairs(self) -> int:
        return int(self.issame.size)


def make_pairs(held: FaceArray, num_pairs: int, seed: int = 0) -> VerificationPairs:
    """Balanced random pairs among the held-out identities (:func:`facelivt.training.build_pairs`,
    shuffled so that every contiguous fold of the 10-fold protocol holds both kinds)."""
    if num_pairs < 20 or num_pairs % 2:
        raise ValueError(f"num_pairs must be an even number >= 20 (10 folds), got {num_pairs}")
    pairs, issame = build_pairs(held.labels, num_pairs, seed)
    used, inverse = np.unique(pairs.reshape(-1), return_inverse=True)
    return VerificationPairs(held.images[used], inverse.reshape(-1).astype(np.int64), issame, held.labels[used])
