"""Reading the old two-file gallery (``gallery.json`` + ``embeddings.safetensors``) to import it.

Everything is checked before anything is written: both files present, valid JSON (no NaN),
integer labels that refer to listed identities, names that are distinct non-empty strings, per
identity counts that agree with the labels (a reordered name list is caught when the counts
differ), a valid threshold. After a successful import the two files are renamed to
``*.imported`` (kept, never deleted).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facelivt.inference.gallery_store import DB_NAME, RESERVED_KEYS, GalleryError, check_meta

log = logging.getLogger(__name__)

FORMAT = "facelivt-gallery"
VERSION = 1
JSON_NAME = "gallery.json"
TENSORS_NAME = "embeddings.safetensors"
IMPORTED_SUFFIX = ".imported"


class AlreadyImportedError(GalleryError):
    """The old files were imported (renamed to ``*.imported``) but the database is not there."""


@dataclass(frozen=True)
class LegacyGallery:
    """A validated two-file gallery: ``vectors[i]`` belongs to ``names[labels[i]]``."""

    names: list[str]
    vectors: np.ndarray
    labels: np.ndarray
    dim: int
    metadata: dict
    files: tuple[Path, Path]


def _read_json(path: Path) -> dict:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))  # a NaN threshold is caught by check_meta, by name
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise GalleryError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise GalleryError(f"{path} is not a facelivt gallery file")
    if meta.get("version") != VERSION:
        raise GalleryError(f"{path}: unsupported gallery version {meta.get('version')!r} (expected {VERSION})")
    return meta


def _read_tensors(path: Path) -> tuple[np.ndarray, np.ndarray]:
    from safetensors.numpy import load_file  # safetensors is a dependency; only this old format needs it

    try:
        tensors = load_file(str(path))
    except FileNotFoundError:
        raise  # renamed by a process that imported it meanwhile
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise GalleryError(f"cannot read {path}: {exc}") from exc
    emb, labels = tensors.get("embeddings"), tensors.get("labels")
    if emb is None or labels is None:
        raise GalleryError(f"{path} is incomplete: 'embeddings' and 'labels' are required")
    if emb.dtype.kind != "f":
        raise GalleryError(f"{path}: embeddings must be floats, got {emb.dtype}")
    if labels.dtype.kind not in "iu":
        raise GalleryError(f"{path}: labels must be integers (identity indices), got {labels.dtype}")
    return emb.astype(np.float32), labels.astype(np.int64)


def _check(meta: dict, emb: np.ndarray, labels: np.ndarray, root: Path) -> tuple[list[str], int, dict]:
    names, dim, extra = meta.get("identities"), meta.get("dim"), meta.get("metadata") or {}
    if not isinstance(names, list) or not isinstance(dim, int) or isinstance(dim, bool) or dim <= 0:
        raise GalleryError(f"gallery in {root} is incomplete (identities and dim are required)")
    if not all(isinstance(n, str) and n.strip() for n in names):
        raise GalleryError(f"gallery in {root}: identity names must be non-empty strings")
    if len(set(names)) != len(names):
        raise GalleryError(f"gallery in {root} lists an identity twice")
    if emb.ndim != 2 or emb.shape[1] != dim or labels.shape != (emb.shape[0],):
        raise GalleryError(f"gallery in {root}: embeddings {emb.shape} / labels {labels.shape} do not match dim {dim}")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(names)):
        raise GalleryError(f"gallery in {root}: labels refer to identities that are not listed")
    counts = np.bincount(labels, minlength=len(names)) if len(labels) else np.zeros(len(names), np.int64)
    if len(names) and counts.min() == 0:
        raise GalleryError(f"gallery in {root}: an identity has no embeddings")
    if "counts" in meta and meta["counts"] != counts.tolist():
        raise GalleryError(f"gallery in {root}: the images per identity in {JSON_NAME} ('counts') do not match the "
                           "labels of the embeddings: the identity list was changed or reordered")
    if not isinstance(extra, dict) or RESERVED_KEYS & set(extra):
        raise GalleryError(f"gallery in {root}: 'metadata' must be an object without the keys {sorted(RESERVED_KEYS)}")
    check_meta(extra, str(root / JSON_NAME))
    if not np.isfinite(emb).all() or (len(emb) and (np.linalg.norm(emb, axis=1) == 0).any()):
        raise GalleryError(f"gallery in {root}: embeddings contain NaN, infinite or all-zero vectors")
    return names, dim, extra


def read_legacy(root: Path) -> LegacyGallery | None:
    """The two-file gallery in ``root``, validated; None when there is none. An incomplete one (one
    file of the two), or one already imported into a database that is now missing, is refused."""
    jpath, tpath = root / JSON_NAME, root / TENSORS_NAME
    has_j, has_t = jpath.is_file(), tpath.is_file()
    if not has_j and not has_t:
        imported = [p.name for p in (jpath, tpath) if p.with_name(p.name + IMPORTED_SUFFIX).is_file()]
        if imported:
            raise AlreadyImportedError(
                f"{root / DB_NAME} is missing, but {', '.join(n + IMPORTED_SUFFIX for n in imported)} show that this "
                f"gallery was imported into it: restore {DB_NAME}, or rename the .imported files back to import "
                "them again (nothing was changed)")
        return None
    if has_j != has_t:
        present, missing = (JSON_NAME, TENSORS_NAME) if has_j else (TENSORS_NAME, JSON_NAME)
        raise GalleryError(f"the gallery in {root} is incomplete: {present} is there but {missing} is missing; "
                           f"restore {missing} (nothing was changed)")
    meta = _read_json(jpath)
    emb, labels = _read_tensors(tpath)
    names, dim, extra = _check(meta, emb, labels, root)
    return LegacyGallery(names, emb, labels, dim, dict(extra), (jpath, tpath))


def mark_imported(legacy: LegacyGallery) -> None:
    """Rename the two files to ``*.imported`` (best effort: the database is the gallery now)."""
    for path in legacy.files:
        try:
            path.rename(path.with_name(path.name + IMPORTED_SUFFIX))
        except OSError as exc:
            log.warning("imported %s but could not rename it to %s: %s", path, path.name + IMPORTED_SUFFIX, exc)
