"""The gallery on disk: one SQLite database, ``GALLERY/gallery.sqlite``.

Schema version 1 (``PRAGMA user_version``; ``PRAGMA application_id`` marks the file as a facelivt gallery):

- ``meta(key, value)``: JSON values: ``dim`` (embedding size), ``created``, and the gallery's metadata
  (``model``, ``weights_fingerprint``, ``flip``, ``threshold``, ``threshold_source``, ...).
- ``identities(id, name UNIQUE, added)``: ``name`` is always text.
- ``embeddings(id, identity_id, vector, source, added, sha256)``: ``vector`` is the L2-normalised
  embedding as little-endian float32 bytes (4 x dim), ``source`` the photo it came from (or NULL),
  ``sha256`` the hex digest of that photo's bytes (or NULL), by which an enrolment run again skips the
  photos it has. Galleries made before that column get it (``ALTER TABLE ... ADD COLUMN``, still schema
  1: older facelivt versions read and write them as before) at the first enrolment that records one.

An identity's embeddings are deleted with it (``ON DELETE CASCADE``, in the schema since its first
version: no gallery needs migrating) and every connection turns foreign keys on. Tools that leave them
off (the ``sqlite3`` shell, Python's ``sqlite3``) can still leave embeddings without their identity:
opening such a gallery raises a :class:`GalleryError` naming them, and :func:`check_gallery` (``facelivt
gallery check GALLERY --repair``) removes them (see :mod:`facelivt.inference.gallery_check`).

The journal is a write-ahead log (WAL): readers never block the writer nor each other, writers wait
for each other (busy timeout), and each change is one ``BEGIN IMMEDIATE`` transaction. So enrolments
from several processes at once all survive, ``identify`` runs while ``enroll`` writes, and a failed
enrolment (disk full, killed process) leaves the gallery exactly as it was before it. WAL needs a
local file system (not NFS/SMB). A gallery opened only to read (``readonly``: ``identify``, ``gallery
check``) refuses writes (``query_only``); in a folder this process cannot write (a read-only mount,
a folder of another user) it is opened with ``mode=ro``, and when there is no write-ahead log there
either (SQLite could not create its files) ``immutable``: nobody can be writing it. Every SQLite
error becomes a :class:`GalleryError` (damaged, foreign or newer file) or a :class:`GalleryWriteError`
(could not write), both naming the file.
"""
from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from facelivt.errors import FaceLiVTError, InvalidInputError, OutputWriteError, UnavailableError, UnknownNameError
from facelivt.files import new_path
from facelivt.transactions import sqlite_transaction
from facelivt.inference.calibration import check_threshold
from facelivt.inference.gallery_check import GalleryProblem, find_problems, orphans_text
from facelivt.inference.gallery_check import repair as repair_rows

log = logging.getLogger(__name__)

DB_NAME = "gallery.sqlite"
SCHEMA_VERSION = 1
APPLICATION_ID = 0x464C5654  # "FLVT"
#: Seconds a writer waits for another process's transaction before giving up.
BUSY_TIMEOUT = 120.0
#: 16 KiB pages hold seven 512-d embeddings each (4 KiB pages held one: the file was twice the data).
PAGE_SIZE = 16384
#: What linking a file fails with where the file system has no hard links (FAT).
NO_HARD_LINKS = (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP)
#: Keys of ``meta`` kept by the store itself (not part of a gallery's user metadata).
RESERVED_KEYS = frozenset({"dim", "created", "imported_from"})

_SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL) WITHOUT ROWID",
    "CREATE TABLE identities (id INTEGER PRIMARY KEY AUTOINCREMENT, "
    "name TEXT NOT NULL UNIQUE CHECK (typeof(name) = 'text' AND length(trim(name)) > 0), added TEXT NOT NULL)",
    "CREATE TABLE embeddings (id INTEGER PRIMARY KEY AUTOINCREMENT, "
    "identity_id INTEGER NOT NULL REFERENCES identities(id) ON DELETE CASCADE, "
    "vector BLOB NOT NULL CHECK (typeof(vector) = 'blob'), source TEXT, added TEXT NOT NULL, sha256 TEXT)",
    "CREATE INDEX embeddings_by_identity ON embeddings(identity_id)",
)
_TABLES = {"meta", "identities", "embeddings"}
_ERRNO = {"SQLITE_FULL": errno.ENOSPC, "SQLITE_READONLY": errno.EROFS, "SQLITE_CANTOPEN": errno.EACCES,
          "SQLITE_BUSY": errno.EBUSY, "SQLITE_PERM": errno.EACCES}


class GalleryError(FaceLiVTError, ValueError):
    """A gallery that cannot be used: damaged, foreign, newer, incomplete or inconsistent."""


class GalleryNotFoundError(GalleryError, FileNotFoundError):
    """There is no gallery in the folder."""


class GalleryMismatchError(GalleryError):
    """A gallery made with another model, other weights or another embedding size."""


class GalleryExistsError(GalleryError, FileExistsError):
    """The folder already holds a gallery (and saving would replace it)."""


class GalleryUnavailableError(GalleryError, UnavailableError):
    """The gallery's database server cannot be reached, or the connection to it dropped during a
    request (a PostgreSQL gallery): nothing was changed by the request that failed, and the next call
    connects again by itself."""


class GalleryWriteError(OutputWriteError):
    """A change could not be written (disk full, read-only, locked too long); nothing was changed
    (``outcome`` says so)."""

    def __init__(self, path, cause: OSError, outcome: str = "the gallery was not changed") -> None:
        super().__init__(path, cause)
        self.outcome = outcome

    def __str__(self) -> str:
        return f"{self.args[1]}; {self.outcome}"


#: What a gallery name may be: a letter or digit, then up to 63 letters, digits, ``_``, ``-`` or ``.``.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def check_gallery_name(name: object) -> str:
    """``name`` if it is a valid gallery name, else :class:`InvalidInputError` saying what is allowed."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name) or ".." in name:
        raise InvalidInputError(
            f"invalid gallery name {name!r}: use 1 to 64 letters, digits, '_', '-' or '.', starting with a "
            "letter or digit (no '/', no '..')")
    return name


def now() -> str:
    """The current UTC time, ISO 8601."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _no_constant(name: str):
    raise InvalidInputError(f"{name} is not a number JSON allows")


def parse_meta_value(text: str):
    """A JSON value that may not be NaN or infinite."""
    return json.loads(text, parse_constant=_no_constant)


def check_meta(meta: dict, where: str) -> None:
    """Refuse metadata with a bad threshold or a wrongly typed model key."""
    if "threshold" in meta:
        check_threshold(meta["threshold"], f"{where}: threshold")
    for key, kind in (("model", str), ("weights_fingerprint", str), ("flip", bool), ("threshold_source", str)):
        if key in meta and not isinstance(meta[key], kind):
            raise GalleryError(f"{where}: {key} must be a {kind.__name__}, got {meta[key]!r}")


@dataclass(frozen=True)
class IdentityInfo:
    """One identity of a gallery: its ``name``, how many ``embeddings`` it has, from how many distinct
    ``photos`` (by content, else by path; embeddings enrolled from arrays count none), when it was
    ``added`` and when its last embedding was (``updated``, ISO 8601 UTC; None in memory) and the
    photo paths recorded (``sources``, filled by :meth:`GalleryStore.identity` only)."""

    name: str
    embeddings: int
    photos: int
    added: str | None = None
    updated: str | None = None
    sources: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"name": self.name, "embeddings": self.embeddings, "photos": self.photos, "added": self.added,
                "updated": self.updated, "sources": list(self.sources)}


@dataclass(frozen=True)
class ExportRows:
    """Every embedding with its identity's name and the photo it came from ('' when none recorded), in
    enrolment order."""

    names: list[str]
    sources: list[str]
    vectors: np.ndarray
    meta: dict


@dataclass(frozen=True)
class Snapshot:
    """The whole gallery as read in one transaction: ``vectors[i]`` belongs to ``names[labels[i]]``."""

    names: list[str]
    vectors: np.ndarray
    labels: np.ndarray
    meta: dict
    dim: int


class GalleryStore:
    """One gallery database. Use :meth:`open` (existing) or :meth:`create` (new or existing).
    ``readonly``: for reading only (a write raises :class:`GalleryWriteError`)."""

    def __init__(self, path: Path, timeout: float = BUSY_TIMEOUT, readonly: bool = False) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self.readonly = readonly
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._pid = -1
        self._version: int | None = None  # data_version when last read in full

    @property
    def location(self) -> Path:
        """Where the gallery is: its folder."""
        return self.path.parent

    # ------------------------------------------------------------------ connection
    @property
    def _con(self) -> sqlite3.Connection:
        if self._conn is None or self._pid != os.getpid():  # a connection is not carried across fork()
            with self.errors(writing=False):
                self._conn = self._connect()
            self._pid = os.getpid()
        return self._conn

    def _connect(self) -> sqlite3.Connection:
        """A connection with foreign keys on. Read-only: ``query_only`` where the folder can be written
        (SQLite then removes the log's files it made, at close), else ``mode=ro``, and ``immutable``
        when there is no log either (SQLite could not create one)."""
        target, uri = str(self.path), False
        if self.readonly and not os.access(self.path.parent, os.W_OK):
            target, uri = Path(os.path.abspath(self.path)).as_uri() + "?mode=ro", True
            if not os.path.exists(f"{self.path}-wal"):
                target += "&immutable=1"
        con = sqlite3.connect(target, timeout=self.timeout, isolation_level=None, check_same_thread=False, uri=uri)
        try:
            con.execute("PRAGMA foreign_keys = ON")
            con.execute("PRAGMA synchronous = FULL")
            con.execute(f"PRAGMA query_only = {'ON' if self.readonly else 'OFF'}")
        except BaseException:
            con.close()
            raise
        return con

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    @contextlib.contextmanager
    def errors(self, writing: bool) -> Iterator[None]:
        """SQLite errors as :class:`GalleryError` / :class:`GalleryWriteError` naming the file."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            code = getattr(exc, "sqlite_errorname", "")
            primary = "_".join(code.split("_")[:2])  # SQLITE_IOERR_WRITE -> SQLITE_IOERR
            if primary in ("SQLITE_CORRUPT", "SQLITE_NOTADB"):
                raise GalleryError(f"{self.path} is damaged or not a facelivt gallery ({exc})") from exc
            if code.startswith("SQLITE_IOERR_SHM"):  # even reading needs the log's shared-memory file
                reason = f"{exc}: no room for {self.path.name}-shm, the index of its write-ahead log (is the disk full?)"
                raise GalleryWriteError(self.path, OSError(errno.ENOSPC, reason)) from exc
            if primary == "SQLITE_CANTOPEN" and not self.readonly and not os.access(self.path.parent, os.W_OK):
                reason = f"{exc}: its folder cannot be written (SQLite keeps the write-ahead log there)"
                raise GalleryWriteError(self.path, OSError(errno.EACCES, reason)) from exc
            if writing or primary in ("SQLITE_FULL", "SQLITE_READONLY"):
                raise GalleryWriteError(self.path, OSError(_ERRNO.get(primary, errno.EIO), str(exc))) from exc
            raise GalleryError(f"cannot read gallery {self.path}: {exc}") from exc

    @contextlib.contextmanager
    def _transaction(self, immediate: bool) -> Iterator[sqlite3.Connection]:
        with self._lock, self.errors(writing=immediate):
            with sqlite_transaction(self._con, immediate) as con:
                yield con

    # ------------------------------------------------------------------ opening
    def _kind(self, con: sqlite3.Connection) -> str:
        """"ours" or "empty" (a new file, not set up yet); anything else raises."""
        app = con.execute("PRAGMA application_id").fetchone()[0]
        version = con.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if app == 0 and version == 0 and not tables:
            return "empty"
        if app != APPLICATION_ID:
            raise GalleryError(f"{self.path} is an SQLite database but not a facelivt gallery")
        if version > SCHEMA_VERSION:
            raise GalleryError(f"{self.path} was written by a newer facelivt (gallery schema {version}; this "
                               f"version reads schema {SCHEMA_VERSION}): upgrade facelivt to use it")
        if version < 1 or not _TABLES <= tables:
            raise GalleryError(f"{self.path} is damaged: its facelivt gallery schema is incomplete")
        return "ours"

    def _wal(self) -> None:
        with self.errors(writing=True):
            _check_wal(self.path, self._con.execute("PRAGMA journal_mode = WAL").fetchone()[0])

    @classmethod
    def open(cls, path: str | os.PathLike, readonly: bool = False) -> "GalleryStore | None":
        """The gallery database at ``path``, validated; None when there is none (no file, or an empty
        one left by a creation that never finished). ``readonly``: only to read it."""
        store = cls(Path(path), readonly=readonly)
        if not store.path.is_file():
            return None
        try:
            with store._transaction(immediate=False) as con:
                kind = store._kind(con)
            if kind == "empty":
                store.close()
                return None
            if not readonly:
                store._wal()
        except BaseException:
            store.close()
            raise
        return store

    @classmethod
    def create(cls, path: str | os.PathLike, meta: dict, rows: "Snapshot | None" = None,
               sources: Sequence[str | None] | None = None,
               hashes: Sequence[str | None] | None = None) -> "tuple[GalleryStore, bool]":
        """Set up a new gallery at ``path`` holding ``meta`` (with ``dim``) and ``rows`` (``sources``,
        ``hashes``: one per row); ``(store, True)``. It is built in a file beside ``path`` and linked
        into place whole (:func:`facelivt.files.new_path`): a failure (a full disk) leaves nothing
        behind and no reader sees a gallery half made. When another process made one first, that gallery is kept and
        returned: ``(store, False)``. An empty file at ``path`` (a creation that never finished) is set
        up in place, as is a new gallery on a file system without hard links."""
        store = cls(Path(path))
        if not os.path.lexists(store.path):
            try:
                with new_path(store.path) as tmp:
                    store._build(tmp, meta, rows, sources, hashes)
                return store, True
            except FileExistsError:
                pass  # another process made it first: use theirs (below)
            except OutputWriteError as exc:
                if isinstance(exc, GalleryWriteError) or exc.errno not in NO_HARD_LINKS:
                    raise GalleryWriteError(store.path, exc.cause, "no gallery was created") from exc
        try:
            with store.errors(writing=True):  # takes effect when the empty file is first written
                store._con.execute(f"PRAGMA page_size = {PAGE_SIZE}")
            store._wal()
            with store._transaction(immediate=True) as con:
                if store._kind(con) == "ours":
                    return store, False
                store._set_up(con, meta, rows, sources, hashes)
        except BaseException:
            store.close()
            raise
        return store, True

    def _build(self, tmp: Path, meta: dict, rows: "Snapshot | None", sources, hashes) -> None:
        """The whole new gallery in the file ``tmp``, then switched to a write-ahead log."""
        try:
            with self.errors(writing=True):
                con = sqlite3.connect(str(tmp), isolation_level=None)
                try:
                    for pragma in (f"page_size = {PAGE_SIZE}", "synchronous = FULL", "foreign_keys = ON"):
                        con.execute(f"PRAGMA {pragma}")
                    with sqlite_transaction(con, immediate=True):
                        self._set_up(con, meta, rows, sources, hashes)
                    _check_wal(self.path, con.execute("PRAGMA journal_mode = WAL").fetchone()[0])
                finally:
                    con.close()
        finally:
            for suffix in ("-journal", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{tmp}{suffix}")

    def _set_up(self, con: sqlite3.Connection, meta: dict, rows: "Snapshot | None", sources, hashes) -> None:
        for statement in _SCHEMA:
            con.execute(statement)
        con.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        con.executemany("INSERT INTO meta(key, value) VALUES (?, ?)",
                        [(k, json.dumps(v, allow_nan=False)) for k, v in meta.items()])
        if rows is not None:
            self._insert_rows(con, rows, sources, hashes)

    # ------------------------------------------------------------------ reading
    def changed(self) -> bool:
        """Whether another connection committed since the last :meth:`snapshot`."""
        with self._lock, self.errors(writing=False):
            return self._con.execute("PRAGMA data_version").fetchone()[0] != self._version

    def snapshot(self) -> Snapshot:
        """Everything, read in one transaction (a consistent view while others write)."""
        with self._transaction(immediate=False) as con:
            version = con.execute("PRAGMA data_version").fetchone()[0]
            meta = self._read_meta(con)
            dim = meta["dim"]
            bad = con.execute("SELECT count(*) FROM embeddings WHERE length(vector) != ?", (4 * dim,)).fetchone()[0]
            if bad:
                raise GalleryError(f"{self.path} is damaged: {bad} embeddings are not {dim} float32 values; "
                                   f"{self._repair_hint()}")
            names = dict(con.execute("SELECT id, name FROM identities"))
            rows = con.execute("SELECT identity_id, vector FROM embeddings ORDER BY id").fetchall()
        snap = build_snapshot(rows, names, meta, dim, str(self.path), self._repair_hint())
        self._version = version
        return snap

    def _repair_hint(self) -> str:
        return f"remove them with `facelivt gallery check {self.path.parent} --repair`"

    def problems(self) -> list[GalleryProblem]:
        """What is wrong in the gallery (see :mod:`facelivt.inference.gallery_check`), read in one transaction."""
        with self._transaction(immediate=False) as con:
            return find_problems(con, self._read_meta(con)["dim"])

    def repair(self) -> list[GalleryProblem]:
        """Delete the inconsistent rows in one transaction; returns what was removed (nothing from a
        file SQLite finds damaged)."""
        with self._transaction(immediate=True) as con:
            return repair_rows(con, self._read_meta(con)["dim"])

    def counts(self) -> tuple[int, int]:
        """(identities, embeddings)."""
        with self._transaction(immediate=False) as con:
            return (con.execute("SELECT count(*) FROM identities").fetchone()[0],
                    con.execute("SELECT count(*) FROM embeddings").fetchone()[0])

    def identities(self) -> list[IdentityInfo]:
        """Every identity with its counts, in enrolment order (one transaction)."""
        with self._transaction(immediate=False) as con:
            rows = con.execute(_IDENTITY_QUERY.format(photo=_photo_key(con), where="")).fetchall()
        return [IdentityInfo(*row) for row in rows]

    def identity(self, name: str) -> IdentityInfo:
        """Identity ``name`` with its counts and photo paths; :class:`UnknownNameError` when not there."""
        with self._transaction(immediate=False) as con:
            row = con.execute(_IDENTITY_QUERY.format(photo=_photo_key(con), where="WHERE i.name = ?"),
                              (name,)).fetchone()
            if row is None:
                raise UnknownNameError(f"identity {name!r} is not in the gallery {self.path.parent}")
            sources = con.execute("SELECT DISTINCT e.source FROM embeddings e JOIN identities i ON i.id = "
                                  "e.identity_id WHERE i.name = ? AND e.source IS NOT NULL ORDER BY e.id",
                                  (name,)).fetchall()
        return IdentityInfo(*row, sources=tuple(r[0] for r in sources))

    def export_rows(self) -> ExportRows:
        """Every embedding with its owner's name and its photo path, read in one transaction."""
        snap = self.snapshot()  # validates the rows
        with self._transaction(immediate=False) as con:
            rows = con.execute("SELECT i.name, coalesce(e.source, ''), e.vector FROM embeddings e JOIN identities i "
                               "ON i.id = e.identity_id ORDER BY e.identity_id, e.id").fetchall()
        vectors = np.frombuffer(b"".join(r[2] for r in rows), dtype="<f4").astype(np.float32).reshape(-1, snap.dim)
        return ExportRows([r[0] for r in rows], [r[1] for r in rows], vectors, snap.meta)

    def _read_meta(self, con: sqlite3.Connection) -> dict:
        meta = {}
        for key, value in con.execute("SELECT key, value FROM meta"):
            try:
                meta[key] = parse_meta_value(value)
            except ValueError as exc:
                raise GalleryError(f"{self.path} is damaged: meta {key!r} is not valid JSON ({exc})") from None
        dim = meta.get("dim")
        if not isinstance(dim, int) or isinstance(dim, bool) or dim <= 0:
            raise GalleryError(f"{self.path} is damaged: embedding size (meta 'dim') is {dim!r}")
        check_meta(meta, str(self.path))
        return meta

    # ------------------------------------------------------------------ writing
    def _fresh(self, con: sqlite3.Connection) -> bool:
        return con.execute("PRAGMA data_version").fetchone()[0] == self._version

    def _insert_rows(self, con: sqlite3.Connection, rows: Snapshot, sources: Sequence[str | None] | None = None,
                     hashes: Sequence[str | None] | None = None) -> None:
        _check_lengths(len(rows.vectors), sources, hashes)
        stamp = now()
        ids = [con.execute("INSERT INTO identities(name, added) VALUES (?, ?)", (n, stamp)).lastrowid for n in rows.names]
        _insert(con, [ids[int(lab)] for lab in rows.labels], rows.vectors, sources, hashes, stamp)

    def add(self, name: str, vectors: np.ndarray, sources: Sequence[str | None] | None = None,
            hashes: Sequence[str | None] | None = None) -> tuple[bool, int]:
        """Add ``vectors`` (normalised, n x dim) to identity ``name`` in one transaction. With ``hashes``
        (one per row: its photo's sha256) the rows whose photo ``name`` already has are skipped (see
        :meth:`enrolled`). Returns whether the caller's view was current (no other process had
        committed since its last read) and how many rows were added."""
        _check_lengths(len(vectors), sources, hashes)
        stamp = now()
        with self._transaction(immediate=True) as con:
            fresh = self._fresh(con)
            row = con.execute("SELECT id FROM identities WHERE name = ?", (name,)).fetchone()
            ident = row[0] if row else con.execute(
                "INSERT INTO identities(name, added) VALUES (?, ?)", (name, stamp)).lastrowid
            keep = list(range(len(vectors)))
            if hashes is not None and row is not None:
                src = sources if sources is not None else [None] * len(vectors)
                keep = [i for i, known in enumerate(_known(con, ident, hashes, src)) if not known]
            _insert(con, [ident] * len(keep), vectors[keep], _pick(sources, keep), _pick(hashes, keep), stamp)
        return fresh, len(keep)

    def enrolled(self, name: str, hashes: Sequence[str | None], sources: Sequence[str | None]) -> list[bool]:
        """Whether each photo is enrolled for ``name`` already: a row with the same ``hashes`` entry, or,
        among the rows recorded without one (by an older facelivt), one with the same ``sources`` path."""
        with self._transaction(immediate=False) as con:
            row = con.execute("SELECT id FROM identities WHERE name = ?", (name,)).fetchone()
            return _known(con, row[0], hashes, sources) if row else [False] * len(hashes)

    def remove(self, name: str, erase: bool = True) -> bool:
        """Delete identity ``name`` and its embeddings in one transaction (:class:`UnknownNameError` when it
        is not there); ``erase``: then :meth:`erase_free_pages`, so that their bytes are gone from the
        files. Returns whether the caller's view was current."""
        with self._transaction(immediate=True) as con:
            fresh = self._fresh(con)
            con.execute("PRAGMA secure_delete = ON")
            if con.execute("DELETE FROM identities WHERE name = ?", (name,)).rowcount == 0:
                raise UnknownNameError(f"identity {name!r} is not in the gallery {self.path.parent}")
        if erase:
            self.erase_free_pages()
        return fresh

    def rename(self, old: str, new: str) -> bool:
        """Rename identity ``old`` to ``new`` in one transaction: :class:`UnknownNameError` when ``old`` is
        not there, :class:`InvalidInputError` when ``new`` is taken. Returns whether the caller's view was current."""
        with self._transaction(immediate=True) as con:
            fresh = self._fresh(con)
            if con.execute("SELECT 1 FROM identities WHERE name = ?", (new,)).fetchone():
                raise InvalidInputError(f"identity {new!r} is in the gallery already ({self.path.parent}): "
                                        "remove it first, or choose another name")
            if con.execute("UPDATE identities SET name = ? WHERE name = ?", (new, old)).rowcount == 0:
                raise UnknownNameError(f"identity {old!r} is not in the gallery {self.path.parent}")
        return fresh

    def erase_free_pages(self) -> None:
        """Rewrite the database without its free pages (``VACUUM``) and empty its write-ahead log
        (``wal_checkpoint(TRUNCATE)``), so that deleted rows are gone from both files, not only unlinked.
        A reader holding an old snapshot can keep the log from being emptied: that is retried for up
        to the busy timeout, then :class:`GalleryWriteError`."""
        with self._lock, self.errors(writing=True):
            con = self._con
            con.execute("PRAGMA secure_delete = ON")
            con.execute("VACUUM")
            deadline = time.monotonic() + self.timeout
            while con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]:
                if time.monotonic() > deadline:
                    raise GalleryWriteError(self.path, OSError(errno.EBUSY, "another process kept reading the "
                                            "gallery: its write-ahead log could not be emptied"),
                                            "the rows were deleted but their bytes may remain in the -wal file "
                                            "until the next removal")
                time.sleep(0.05)

    def set_meta(self, items: dict) -> None:
        """Write metadata keys (JSON values; None deletes a key) in one transaction."""
        check_meta({k: v for k, v in items.items() if v is not None}, str(self.path))
        with self._transaction(immediate=True) as con:
            for key, value in items.items():
                if value is None:
                    con.execute("DELETE FROM meta WHERE key = ?", (key,))
                else:
                    con.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                                (key, json.dumps(value, allow_nan=False)))

    def replace(self, rows: Snapshot, meta: dict) -> None:
        """Replace every identity, embedding and metadata key, in one transaction."""
        with self._transaction(immediate=True) as con:
            con.execute("DELETE FROM embeddings")
            con.execute("DELETE FROM identities")
            con.execute("DELETE FROM meta")
            con.executemany("INSERT INTO meta(key, value) VALUES (?, ?)",
                            [(k, json.dumps(v, allow_nan=False)) for k, v in meta.items()])
            self._insert_rows(con, rows)


def build_snapshot(rows: Sequence[tuple[int, bytes]], names: dict, meta: dict, dim: int, where: str,
                   hint: str) -> Snapshot:
    """A :class:`Snapshot` from ``(identity id, float32 bytes)`` rows in enrolment order and the names by
    identity id; rows that cannot be searched raise :class:`GalleryError` naming ``where`` (``hint``:
    how to remove them)."""
    owners = np.array([r[0] for r in rows], dtype=np.int64)
    vectors = np.frombuffer(b"".join(bytes(r[1]) for r in rows), dtype="<f4").astype(np.float32).reshape(-1, dim)
    used, labels = np.unique(owners, return_inverse=True)  # identity ids ascending: enrolment order
    lost = [int(i) for i in used if int(i) not in names]
    if lost:
        count = int(np.isin(owners, lost).sum())
        raise GalleryError(f"{where} is inconsistent: {orphans_text(count, lost)}; {hint}")
    if not np.isfinite(vectors).all() or (len(vectors) and (np.abs(vectors).sum(1) == 0).any()):
        raise GalleryError(f"{where} is damaged: it holds NaN, infinite or all-zero embeddings; {hint}")
    return Snapshot([names[int(i)] for i in used], vectors, labels.astype(np.int64).reshape(-1), meta, dim)


_IDENTITY_QUERY = (
    "SELECT i.name, count(e.id), count(DISTINCT {photo}), i.added, max(e.added) FROM identities i "
    "LEFT JOIN embeddings e ON e.identity_id = i.id {where} GROUP BY i.id ORDER BY i.id"
)


def _photo_key(con: sqlite3.Connection) -> str:
    """What tells photos apart: their content (sha256) where recorded, else their path."""
    return "coalesce(e.sha256, e.source)" if _has_sha256(con) else "e.source"


def _insert(con: sqlite3.Connection, owners: Sequence[int], vectors: np.ndarray, sources, hashes, stamp: str) -> None:
    """Embedding rows (``sources``, ``hashes``: one per row, or None)."""
    n = len(owners)
    src = [None if x is None else str(x) for x in sources] if sources is not None else [None] * n
    rows = [(o, _blob(v), x, stamp) for o, v, x in zip(owners, vectors, src)]
    if hashes is None:
        con.executemany("INSERT INTO embeddings(identity_id, vector, source, added) VALUES (?, ?, ?, ?)", rows)
        return
    if not _has_sha256(con):
        con.execute("ALTER TABLE embeddings ADD COLUMN sha256 TEXT")
    con.executemany("INSERT INTO embeddings(identity_id, vector, source, added, sha256) VALUES (?, ?, ?, ?, ?)",
                    [(*r, h) for r, h in zip(rows, hashes)])


def _check_lengths(n: int, sources, hashes) -> None:
    for given, what in ((sources, "sources"), (hashes, "hashes")):
        if given is not None and len(given) != n:
            raise InvalidInputError(f"{n} embeddings but {len(given)} {what}")


def _pick(items, keep: list[int]):
    return None if items is None else [items[i] for i in keep]


def _has_sha256(con: sqlite3.Connection) -> bool:
    return any(r[1] == "sha256" for r in con.execute("PRAGMA table_info(embeddings)"))


def _known(con: sqlite3.Connection, ident: int, hashes: Sequence[str | None],
           sources: Sequence[str | None]) -> list[bool]:
    """Whether identity ``ident`` has each photo: by content, or by path for rows recorded without it."""
    column = "sha256" if _has_sha256(con) else "NULL"
    rows = con.execute(f"SELECT {column}, source FROM embeddings WHERE identity_id = ?", (ident,)).fetchall()
    digests = {h for h, _ in rows if h is not None}
    paths = {src for h, src in rows if h is None and src is not None}
    return [(h is not None and h in digests) or (src is not None and str(src) in paths)
            for h, src in zip(hashes, sources)]


def _check_wal(path: Path, mode: str) -> None:
    if str(mode).lower() != "wal":
        log.warning("%s: the file system does not support a write-ahead log (journal mode %s)", path, mode)


def _blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


@dataclass(frozen=True)
class GalleryCheck:
    """What :func:`check_gallery` found: the gallery's size, what is wrong in it now (after a repair:
    what could not be repaired) and what the repair removed."""

    path: Path
    identities: int
    embeddings: int
    problems: list[GalleryProblem]
    repaired: list[GalleryProblem]


def check_gallery(folder: str | os.PathLike, *, repair: bool = False) -> GalleryCheck:
    """Check the gallery of ``folder`` for inconsistent rows (read-only); ``repair``: delete them, in
    one transaction. A file that is not a gallery, or a damaged one, raises :class:`GalleryError`."""
    path = Path(folder) / DB_NAME
    store = GalleryStore.open(path, readonly=not repair)
    if store is None:
        raise GalleryNotFoundError(f"no gallery in {folder} ({DB_NAME} is missing or empty)")
    return check_store(store, path, repair)


def check_store(store, where, repair: bool) -> GalleryCheck:
    """The check of an open gallery ``store`` (SQLite or PostgreSQL; closed after), reported as ``where``;
    ``repair``: its bad rows deleted first."""
    try:
        removed = store.repair() if repair else []
        problems = store.problems()
        identities, embeddings = store.counts()
    finally:
        store.close()
    return GalleryCheck(where, identities, embeddings, problems, removed)
