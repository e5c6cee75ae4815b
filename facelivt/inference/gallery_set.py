"""Named galleries under one root, as a service keeps them: a folder holding one gallery folder per
name (``ROOT/NAME/gallery.sqlite``), or a PostgreSQL database (``postgresql://...``) holding every
gallery in its tables.

    >>> galleries = GallerySet("galleries", dim=512, metadata=recognizer.gallery_metadata())
    >>> staff = galleries.open("staff", create=True)   # a Gallery: enroll_embeddings, search, ...

A name is a few safe characters (:func:`check_gallery_name`), never a path: a name holding a slash or two dots is
refused before any file is touched. Each :class:`Gallery` is opened once and kept; it refreshes its
search index itself when another process changes the gallery.
"""
from __future__ import annotations

import os
import re
import threading
from pathlib import Path

from facelivt.errors import InvalidInputError
from facelivt.inference.gallery import Gallery
from facelivt.inference.gallery_store import DB_NAME, GalleryError, GalleryNotFoundError

#: What a gallery name may be: a letter or digit, then up to 63 letters, digits, ``_``, ``-`` or ``.``.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def check_gallery_name(name: object) -> str:
    """``name`` if it is a valid gallery name, else :class:`InvalidInputError` saying what is allowed."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name) or ".." in name:
        raise InvalidInputError(
            f"invalid gallery name {name!r}: use 1 to 64 letters, digits, '_', '-' or '.', starting with a "
            "letter or digit (no '/', no '..')")
    return name


class GallerySet:
    """The galleries under ``root`` (a folder; made when the first gallery is), each holding
    ``dim``-d embeddings described by ``metadata`` (a recognizer's :meth:`gallery_metadata`: a gallery
    made by another model is refused when opened). ``backend``: the search backend of each gallery."""

    def __init__(self, root: str | os.PathLike, *, dim: int, metadata: dict, backend: str = "auto") -> None:
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise GalleryError(f"gallery root {self.root} exists and is not a folder")
        self.dim = int(dim)
        self.metadata = dict(metadata)
        self.backend = backend
        self._open: dict[str, Gallery] = {}
        self._lock = threading.Lock()

    @property
    def kind(self) -> str:
        """Where the galleries are kept: ``"sqlite"``."""
        return "sqlite"

    def location(self, name: str) -> Path:
        """The folder of gallery ``name``."""
        return self.root / check_gallery_name(name)

    def names(self) -> list[str]:
        """The galleries that exist, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(d.name for d in self.root.iterdir()
                      if NAME_PATTERN.fullmatch(d.name) and (d / DB_NAME).is_file())

    def exists(self, name: str) -> bool:
        return (self.location(name) / DB_NAME).is_file()

    def open(self, name: str, *, create: bool = False) -> Gallery:
        """Gallery ``name`` (opened once, then kept). ``create``: a new one is made by its first
        enrolment; else a missing gallery raises :class:`GalleryNotFoundError`."""
        folder = self.location(name)
        with self._lock:
            gallery = self._open.get(name)
            if gallery is not None and (gallery.path is None or not self._gone(gallery)):
                return gallery
            if not create and not (folder / DB_NAME).is_file():
                raise GalleryNotFoundError(f"no gallery named {name!r}")
            gallery = Gallery.open(folder, create=create, dim=self.dim, metadata=self.metadata, backend=self.backend)
            self._open[name] = gallery
            return gallery

    def _gone(self, gallery: Gallery) -> bool:
        """A kept gallery whose database was removed meanwhile (or never made: still pending)."""
        return not (Path(gallery.path) / DB_NAME).is_file()

    def close(self) -> None:
        with self._lock:
            for gallery in self._open.values():
                gallery.close()
            self._open.clear()
