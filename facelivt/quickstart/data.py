"""Quickstart data: faces in memory (:class:`facelivt.data.FaceArray`) from synthetic identities or
an image folder (photos are aligned with MTCNN first, the crops kept as a cache), the identity split
(:func:`facelivt.data.split_identities`, as the trainer makes it) and the held-out pairs
(:class:`facelivt.training.HeldoutPairs`)."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image
from tqdm import tqdm

from facelivt.data import FaceArray, SyntheticIdentities, scan_image_folder, split_identities
from facelivt.data.folder import UNREADABLE, load_image
from facelivt.data.transforms import INPUT_SIZE
from facelivt.errors import InvalidInputError
from facelivt.inference import FaceDetector
from facelivt.inference.folders import align_folder, output_path
from facelivt.training import HeldoutPairs

from .config import QuickstartConfig

PathLike = str | os.PathLike


def synthetic_faces(num_identities: int, images_per_identity: int, seed: int = 0, progress: bool = True) -> FaceArray:
    """:class:`facelivt.data.SyntheticIdentities` rendered into memory (deterministic for ``seed``)."""
    ds = SyntheticIdentities(num_identities, images_per_identity, seed=seed)
    return FaceArray.from_dataset(ds, f"synthetic identities (seed {seed})", progress)


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


def needs_alignment(files: list[str], probe: int = 32) -> bool:
    """True unless the first ``probe`` readable files are all 112x112 (already-aligned crops)."""
    sizes = []
    for path in files:
        try:
            with Image.open(path) as im:
                sizes.append(im.size)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):  # the size alone, no pixels
            continue
        if sizes[-1] != (INPUT_SIZE, INPUT_SIZE) or len(sizes) >= probe:
            break
    if not sizes:
        raise InvalidInputError("none of the probed images could be read")
    return sizes[-1] != (INPUT_SIZE, INPUT_SIZE)


def select_identities(classes: list[str], samples: list[tuple[str, int]], max_images: int, seed: int) -> list[tuple[str, int]]:
    """Whole identities (in a seeded random order) until ``max_images`` is reached; identities with
    a single image are left out (they give no matched pair and teach little)."""
    by_label: dict[int, list[str]] = {}
    for path, label in samples:
        by_label.setdefault(label, []).append(path)
    chosen: list[tuple[str, int]] = []
    for label in np.random.default_rng(seed).permutation(len(classes)):
        files = by_label.get(int(label), [])
        if len(files) < 2 or (chosen and len(chosen) + len(files) > max_images):
            continue
        chosen.extend((f, int(label)) for f in files)
        if len(chosen) >= max_images:
            break
    return sorted(chosen, key=lambda s: (s[1], s[0]))


def _align(chosen: list[tuple[str, int]], root: Path, align_dir: Path, mtcnn_weights: PathLike | None, info: FolderInfo,
           progress: bool) -> list[tuple[str, int]]:
    """The largest face of each chosen photo aligned into ``align_dir`` (crops already there are
    reused) by :func:`facelivt.inference.folders.align_folder`; the crops' paths."""
    report = align_folder(FaceDetector(mtcnn_weights), root, align_dir, fmt="png", skip_existing=True, progress=progress,
                          files=[path for path, _ in chosen])
    info.aligned, info.align_dir, info.cached = True, str(align_dir), report.skipped_existing
    info.no_face, info.unreadable = len(report.no_face), len(report.unreadable)
    info.skipped = (report.no_face + [f"{path}: {why}" for path, why in report.unreadable])[:10]
    crops = [(output_path(Path(path).relative_to(root), align_dir, "png"), label) for path, label in chosen]
    return [(str(crop), label) for crop, label in crops if crop.is_file()]


def _load(chosen: list[tuple[str, int]], classes: list[str], info: FolderInfo, progress: bool) -> FaceArray:
    """The chosen 112x112 images in memory, identities relabelled 0.. (unreadable ones counted)."""
    images, labels = [], []
    for path, label in tqdm(chosen, desc="load faces", unit="img", disable=not progress):
        try:
            images.append(load_image(path))
            labels.append(label)
        except UNREADABLE as exc:
            info.unreadable += 1
            info.skipped = (info.skipped + [str(exc)])[:10]
    if not images:
        raise InvalidInputError(f"{info.root}: no usable face image among {len(chosen)} files")
    used = sorted(set(labels))
    remap = {old: new for new, old in enumerate(used)}
    return FaceArray(np.stack(images), np.array([remap[i] for i in labels], dtype=np.int64), [classes[i] for i in used], info.root)


def folder_faces(root: PathLike, *, max_images: int = 4000, max_align_images: int | None = None, seed: int = 0,
                 align_dir: PathLike | None = None, mtcnn_weights: PathLike | None = None,
                 progress: bool = True) -> tuple[FaceArray, FolderInfo]:
    """``root/<identity>/<image>`` in memory: at most ``max_images`` (``max_align_images`` when they
    must be aligned first), whole identities chosen with ``seed``. Images that are not 112x112 crops
    are aligned with MTCNN (largest face) and the crops kept under ``align_dir`` (``root`` mirrored)
    for the next run. Faceless or unreadable images are skipped and counted."""
    start, root = time.perf_counter(), Path(root)
    if max_images < 4 or (max_align_images is not None and max_align_images < 4):
        raise InvalidInputError(f"max_images and max_align_images must be at least 4, got {max_images}, {max_align_images}")
    classes, samples = scan_image_folder(root)
    info = FolderInfo(str(root), len(classes), len(samples))
    align = needs_alignment([p for p, _ in samples])
    info.max_images = min(max_images, max_align_images) if align and max_align_images else max_images
    chosen = select_identities(classes, samples, info.max_images, seed)
    if not chosen:
        raise InvalidInputError(f"{root}: no identity has at least 2 images; verification needs matched pairs")
    if align and align_dir is None:
        raise InvalidInputError(f"{root} holds images that are not 112x112 crops: an align_dir is needed to keep the crops")
    if align:
        chosen = _align(chosen, root, Path(align_dir), mtcnn_weights, info, progress)
    faces = _load(chosen, classes, info, progress)
    info.identities_used, info.images_used, info.seconds = faces.num_identities, len(faces), time.perf_counter() - start
    return faces, info


def load_faces(config: QuickstartConfig, num_identities: int, max_images: int, max_align_images: int, out: Path) -> tuple[FaceArray, FolderInfo | None]:
    """The faces of a run: ``data.type`` synthetic (``num_identities`` of the plan) or folder."""
    d, qs = config.training.data, config.quickstart
    if d.type == "synthetic":
        return synthetic_faces(num_identities, d.images_per_identity, d.synthetic_seed, qs.progress), None
    return folder_faces(d.root, max_images=max_images, max_align_images=max_align_images, seed=d.split_seed,
                        align_dir=out / "aligned", mtcnn_weights=qs.mtcnn_weights, progress=qs.progress)


def split_faces(faces: FaceArray, held_out_fraction: float, seed: int = 0) -> tuple[FaceArray, FaceArray]:
    """(training identities, held-out identities): the trainer's split (:func:`facelivt.data.split_identities`)."""
    train_idx, held_idx = split_identities(faces.labels, held_out_fraction, seed)
    if held_idx.size == 0:
        raise InvalidInputError("the held-out split is empty: use a held-out fraction > 0 and at least 2 identities")
    train, held = faces.subset(train_idx), faces.subset(held_idx)
    if train.num_identities < 2:
        raise InvalidInputError(f"only {train.num_identities} training identity left: use more identities")
    return train, held


def limit_per_identity(faces: FaceArray, per_identity: int) -> FaceArray:
    """The first ``per_identity`` images of every identity (all of them when it has fewer)."""
    if per_identity < 2:
        raise InvalidInputError(f"per_identity must be >= 2 (matched pairs), got {per_identity}")
    rank = np.zeros(len(faces), dtype=np.int64)
    for label in np.unique(faces.labels):
        where = np.flatnonzero(faces.labels == label)
        rank[where] = np.arange(where.size)
    return faces.subset(np.flatnonzero(rank < per_identity))


def feasible_pairs(held: FaceArray, wanted: int) -> int:
    """At most ``wanted`` pairs, and no more than the held-out images allow (a multiple of 20)."""
    counts = np.bincount(held.labels)
    n = min(wanted, 2 * int(sum(c * (c - 1) // 2 for c in counts)))
    n -= n % 20
    if n < 20:
        raise InvalidInputError(f"the held-out identities ({held.num_identities}, {len(held)} images) allow too few "
                         "verification pairs; use more images per identity")
    return n


def make_pairs(held: FaceArray, num_pairs: int, seed: int = 0) -> HeldoutPairs:
    """Balanced random pairs among the held-out identities (:class:`facelivt.training.HeldoutPairs`,
    shuffled so that every contiguous fold of the 10-fold protocol holds both kinds)."""
    if num_pairs < 20 or num_pairs % 2:
        raise InvalidInputError(f"num_pairs must be an even number >= 20 (10 folds), got {num_pairs}")
    return HeldoutPairs(held, np.arange(len(held)), held.labels, num_pairs, seed)
