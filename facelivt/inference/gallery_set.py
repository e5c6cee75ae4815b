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
import threading
from pathlib import Path

from facelivt.inference.gallery import Gallery
from facelivt.inference.gallery_pg import PgStore, PgTarget, is_pg_url, parse_pg_url, redact_url
from facelivt.inference.gallery_store import (  # noqa: F401  (check_gallery_name: re-exported)
    DB_NAME,
    NAME_PATTERN,
    GalleryError,
    GalleryNotFoundError,
    check_gallery_name,
)

class GallerySet:
    """The galleries under ``root`` (a folder; made when the first gallery is), each holding
    ``dim``-d embeddings described by ``metadata`` (a recognizer's :meth:`gallery_metadata`: a gallery
    made by another model is refused when opened). ``backend``: the search backend of each gallery.
    ``root`` may be a PostgreSQL URL naming no gallery (``postgresql://user@host:port/db``): its
    galleries are the ones in that database."""

    def __init__(self, root: str | os.PathLike, *, dim: int, metadata: dict, backend: str = "auto") -> None:
        self._db: PgStore | None = None
        if is_pg_url(root):
            self.root: Path | PgTarget = parse_pg_url(str(root), gallery=False)
            self._db = PgStore(self.root, readonly=True)
        else:
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
        """Where the galleries are kept: ``"sqlite"`` (folders) or ``"postgresql"``."""
        return "sqlite" if self._db is None else "postgresql"

    def location(self, name: str) -> Path | PgTarget:
        """The folder of gallery ``name`` (or its database and name)."""
        if isinstance(self.root, PgTarget):
            return self.root.named(name)
        return self.root / check_gallery_name(name)

    def names(self) -> list[str]:
        """The galleries that exist, sorted (:class:`GalleryUnavailableError` when a PostgreSQL server
        cannot be reached)."""
        if self._db is not None:
            return self._db.gallery_names()
        if not self.root.is_dir():
            return []
        return sorted(d.name for d in self.root.iterdir()
                      if NAME_PATTERN.fullmatch(d.name) and (d / DB_NAME).is_file())

    def exists(self, name: str) -> bool:
        where = self.location(name)
        if isinstance(where, PgTarget):
            return name in self.names()
        return (where / DB_NAME).is_file()

    def open(self, name: str, *, create: bool = False) -> Gallery:
        """Gallery ``name`` (opened once, then kept). ``create``: a new one is made by its first
        enrolment; else a missing gallery raises :class:`GalleryNotFoundError`."""
        folder = self.location(name)
        with self._lock:
            gallery = self._open.get(name)
            if gallery is not None and (gallery.path is None or not self._gone(gallery)):
                return gallery
            if not create and not self.exists(name):
                where = f" in {redact_url(self.root.conninfo)}" if isinstance(self.root, PgTarget) else ""
                raise GalleryNotFoundError(f"no gallery named {name!r}{where}")
            gallery = Gallery.open(folder, create=create, dim=self.dim, metadata=self.metadata, backend=self.backend)
            self._open[name] = gallery
            return gallery

    def _gone(self, gallery: Gallery) -> bool:
        """A kept gallery whose database was removed meanwhile (or never made: still pending)."""
        if isinstance(gallery.path, PgTarget):
            return False  # galleries are not removed from PostgreSQL; a pending one makes itself when enrolled to
        return not (Path(gallery.path) / DB_NAME).is_file()

    def close(self) -> None:
        with self._lock:
            for gallery in self._open.values():
                gallery.close()
            self._open.clear()
            if self._db is not None:
                self._db.close()
