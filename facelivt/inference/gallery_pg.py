"""Galleries in a PostgreSQL database (``postgresql://user@host:port/db?gallery=NAME``), so that several
processes and hosts share them. The same interface :class:`~facelivt.inference.gallery.Gallery` uses of
:class:`~facelivt.inference.gallery_store.GalleryStore`; needs the ``postgres`` extra (psycopg 3).

One database holds every gallery, in four tables made on first use (``CREATE ... IF NOT EXISTS`` under
a transaction-level advisory lock, so processes starting at once do not race), schema version 1:

- ``facelivt_schema(version)``: one row; a newer schema is refused with "upgrade facelivt".
- ``facelivt_galleries(id, name UNIQUE, meta, version, created)``: ``meta`` the gallery's metadata as
  JSON text (``dim``, ``created``, ``model``, ...); ``version`` counts the changes committed.
- ``facelivt_identities(id, gallery_id, name, added)``, ``UNIQUE (gallery_id, name)``.
- ``facelivt_embeddings(id, identity_id, vector, source, added, sha256)``: ``vector`` the normalised
  embedding as little-endian float32 ``bytea``, ``source`` its photo, ``sha256`` that photo's digest.
  Identities and embeddings are deleted with their gallery / identity (``ON DELETE CASCADE``).

Each enrolment, rename or removal is one transaction that locks the identity's row, then the gallery's
(always in that order: no deadlock), so concurrent enrolments to the same new identity make it once and
lose no row, and a process killed mid-way leaves nothing of its transaction. Every write increments the
gallery's ``version`` and sends ``NOTIFY facelivt_gallery_<gallery id>`` in its transaction; each
store ``LISTEN``\\ s on its gallery's channel, so :meth:`PgStore.changed` (called by ``Gallery.refresh`` before a
search) is a non-blocking poll of the socket: no query unless another process wrote.

A server that cannot be reached, or a connection that drops, raises
:class:`~facelivt.inference.gallery_store.GalleryUnavailableError` (its message never shows the URL's
password); the next call connects again by itself. Deleted rows are gone for every reader at once;
their bytes stay in the table's pages until PostgreSQL's vacuum reuses them (there is no equivalent of
the SQLite gallery's ``VACUUM`` + ``secure_delete`` erase).
"""
from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import threading
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import numpy as np

from facelivt.errors import InvalidInputError, UnknownNameError
from facelivt.extras import require
from facelivt.inference.gallery_check import GalleryProblem
from facelivt.inference.gallery_store import (
    BUSY_TIMEOUT,
    ExportRows,
    GalleryCheck,
    GalleryError,
    GalleryNotFoundError,
    GalleryUnavailableError,
    GalleryWriteError,
    IdentityInfo,
    Snapshot,
    build_snapshot,
    check_gallery_name,
    check_meta,
    check_store,
    now,
    parse_meta_value,
)

log = logging.getLogger(__name__)

SCHEMES = ("postgresql://", "postgres://")
#: The gallery a URL without ``gallery=`` names.
DEFAULT_GALLERY = "default"
SCHEMA_VERSION = 1
#: Prefix of the channel of each gallery: ``facelivt_gallery_<id>``.
CHANNEL = "facelivt_gallery"
#: Key of the advisory lock that serialises setting up the tables ("FLVT").
SCHEMA_LOCK = 0x464C5654
CONNECT_TIMEOUT = 10
#: Times a transaction is tried when PostgreSQL aborts it for a deadlock or a serialization failure.
ATTEMPTS = 5

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS facelivt_schema (version integer NOT NULL)",
    "CREATE TABLE IF NOT EXISTS facelivt_galleries (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE, "
    "meta text NOT NULL, version bigint NOT NULL DEFAULT 0, created text NOT NULL)",
    "CREATE TABLE IF NOT EXISTS facelivt_identities (id bigserial PRIMARY KEY, gallery_id bigint NOT NULL "
    "REFERENCES facelivt_galleries(id) ON DELETE CASCADE, name text NOT NULL CHECK (length(btrim(name)) > 0), "
    "added text NOT NULL, UNIQUE (gallery_id, name))",
    "CREATE TABLE IF NOT EXISTS facelivt_embeddings (id bigserial PRIMARY KEY, identity_id bigint NOT NULL "
    "REFERENCES facelivt_identities(id) ON DELETE CASCADE, vector bytea NOT NULL, source text, "
    "added text NOT NULL, sha256 text)",
    "CREATE INDEX IF NOT EXISTS facelivt_embeddings_by_identity ON facelivt_embeddings(identity_id)",
)
_IDENTITY_QUERY = (
    "SELECT i.name, count(e.id), count(DISTINCT coalesce(e.sha256, e.source)), i.added, max(e.added) "
    "FROM facelivt_identities i LEFT JOIN facelivt_embeddings e ON e.identity_id = i.id "
    "WHERE i.gallery_id = %s {where} GROUP BY i.id ORDER BY i.id"
)
_ROWS_QUERY = ("SELECT e.identity_id, e.vector FROM facelivt_embeddings e JOIN facelivt_identities i "
               "ON i.id = e.identity_id WHERE i.gallery_id = %s ORDER BY e.id")


def _psycopg():
    return require("psycopg", "A gallery in PostgreSQL")


# ---------------------------------------------------------------------- URLs
def is_pg_url(value: object) -> bool:
    """Whether ``value`` is a ``postgresql://`` (or ``postgres://``) URL."""
    return isinstance(value, str) and value.lower().startswith(SCHEMES)


@dataclass(frozen=True)
class PgTarget:
    """A PostgreSQL database (``conninfo``: the URL psycopg gets, without ``gallery=``) and one gallery in
    it (None: the database only). ``str()`` shows it with its password hidden."""

    conninfo: str
    gallery: str | None
    secrets: tuple[str, ...] = ()

    def named(self, name: str) -> "PgTarget":
        return replace(self, gallery=check_gallery_name(name))

    def scrub(self, text: str) -> str:
        """``text`` with the URL's password (if it is in there) hidden."""
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def __str__(self) -> str:
        shown = redact_url(self.conninfo)
        return shown if self.gallery is None else f"{shown} (gallery {self.gallery})"


def redact_url(url: str) -> str:
    """``url`` with the password of its user part and of a ``password=`` parameter shown as ``***``."""
    if not is_pg_url(url):
        return url
    parts = urlsplit(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if at and ":" in userinfo:
        userinfo = userinfo.split(":", 1)[0] + ":***"
    query = "&".join(f"{k}=***" if k == "password" else f"{k}={v}" for k, v in parse_qsl(parts.query, True))
    return urlunsplit((parts.scheme, f"{userinfo}{at}{hosts}", parts.path, query, parts.fragment))


def shown(location: str) -> str:
    """A gallery folder or URL as messages show it (a URL's password hidden)."""
    return redact_url(location) if is_pg_url(location) else location


def parse_pg_url(url: str, gallery: bool = True) -> PgTarget:
    """``url`` split into what psycopg connects to and the gallery it names (``gallery=NAME``, default
    :data:`DEFAULT_GALLERY`). ``gallery=False``: a database holding galleries, which names none."""
    if not is_pg_url(url):
        raise InvalidInputError(f"not a PostgreSQL URL (postgresql://user@host:port/database): {redact_url(url)}")
    parts = urlsplit(url)
    params = parse_qsl(parts.query, keep_blank_values=True)
    names = [v for k, v in params if k == "gallery"]
    if len(names) > 1:
        raise InvalidInputError(f"{redact_url(url)} names more than one gallery")
    if names and not gallery:
        raise InvalidInputError(f"{redact_url(url)} is a database holding galleries: leave out gallery=")
    rest = urlencode([(k, v) for k, v in params if k != "gallery"])
    conninfo = urlunsplit((parts.scheme, parts.netloc, parts.path, rest, parts.fragment))
    secrets = [v for k, v in params if k == "password" and v]
    userinfo, at, _ = parts.netloc.rpartition("@")
    if at and ":" in userinfo:
        raw = userinfo.split(":", 1)[1]
        secrets += [s for s in {raw, unquote(raw)} if s]
    name = check_gallery_name(names[0] if names else DEFAULT_GALLERY) if gallery else None
    return PgTarget(conninfo, name, tuple(sorted(secrets, key=len, reverse=True)))


# ---------------------------------------------------------------------- errors
def _gone(exc: BaseException) -> bool:
    """Whether ``exc`` says the server cannot be reached or the connection is lost."""
    psycopg = _psycopg()
    if isinstance(exc, psycopg.InterfaceError):
        return True
    state = getattr(exc, "sqlstate", None)
    return isinstance(exc, psycopg.OperationalError) and (state is None or state[:2] == "08" or state[:3] == "57P")


def _retryable(exc: BaseException) -> bool:
    return getattr(exc, "sqlstate", None) in ("40001", "40P01")  # serialization failure, deadlock


class PgStore:
    """One gallery in a PostgreSQL database (:meth:`open`, :meth:`create`), or, with a ``target`` naming
    none, the database (:meth:`gallery_names`). ``readonly``: writes raise :class:`GalleryWriteError`."""

    def __init__(self, target: PgTarget, readonly: bool = False, timeout: float = BUSY_TIMEOUT) -> None:
        self.target = target
        self.readonly = readonly
        self.timeout = timeout
        self._lock = threading.RLock()
        self._conn = None
        self._pid = -1
        self._schema = False  # the tables exist
        self._gid: int | None = None
        self._version: int | None = None  # the gallery's version when last read in full
        self._dirty = True  # another connection committed since the last snapshot (or may have)
        self._inherited: list = []  # connections of a parent process: never used, never closed here

    @property
    def location(self) -> PgTarget:
        return self.target

    # ------------------------------------------------------------------ connection
    def _connection(self):
        if self._conn is not None and self._pid != os.getpid():  # fork(): the parent's, not ours
            self._inherited.append(self._conn)
            self._conn = None
        if self._conn is None or self._conn.closed:
            if self._conn is not None:
                log.info("connecting again to the gallery database %s", self.target)
            self._conn = self._connect()
            self._pid = os.getpid()
            self._dirty = True  # notifications may have been missed while not listening
        return self._conn

    def _connect(self):
        psycopg = _psycopg()
        try:
            con = psycopg.connect(self.target.conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT)
        except psycopg.Error as exc:
            raise self._unavailable(exc, "cannot connect to") from None
        try:
            con.execute(f"SET lock_timeout = {int(self.timeout * 1000)}")
            if self._gid is not None:
                con.execute(f"LISTEN {CHANNEL}_{int(self._gid)}")
            self._schema = _ensure_schema(con, create=not self.readonly, where=self.target.conninfo)
        except psycopg.Error as exc:
            con.close()
            raise self._translate(exc, write=False) from None
        except BaseException:
            con.close()
            raise
        return con

    def _drop(self) -> None:
        if self._conn is not None and self._pid == os.getpid():
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = None

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _unavailable(self, exc: BaseException, doing: str = "lost the connection to") -> GalleryUnavailableError:
        reason = self.target.scrub(" ".join(str(exc).split()))
        return GalleryUnavailableError(f"{doing} the gallery database {redact_url(self.target.conninfo)}: {reason}")

    def _translate(self, exc: BaseException, write: bool) -> Exception:
        """A psycopg error as the gallery error a caller sees."""
        state = getattr(exc, "sqlstate", None) or ""
        reason = self.target.scrub(" ".join(str(exc).split()))
        if _gone(exc):
            return self._unavailable(exc)
        if state == "23505":
            return InvalidInputError(f"that identity name is in the gallery {self.target} already ({reason})")
        if state[:2] == "22" or isinstance(exc, _psycopg().DataError):  # e.g. a NUL character in a name
            return InvalidInputError(f"the gallery {self.target} refused a value: {reason}")
        codes = {"55P03": errno.EBUSY, "53100": errno.ENOSPC, "25006": errno.EROFS, "42501": errno.EACCES}
        if write or state in codes:
            return GalleryWriteError(str(self.target), OSError(codes.get(state, errno.EIO), reason))
        return GalleryError(f"cannot read the gallery {self.target}: {reason}")

    # ------------------------------------------------------------------ transactions
    def _run(self, body: Callable[[Any], Any], write: bool) -> Any:
        """``body(connection)`` in one transaction (read-only ones see one snapshot); tried again after a
        deadlock or serialization failure, and once on a new connection when a kept one turns out to be
        lost before anything was committed."""
        psycopg = _psycopg()
        if write and self.readonly:
            raise GalleryWriteError(str(self.target), OSError(errno.EROFS, "the gallery was opened read-only"))
        with self._lock:
            for attempt in range(ATTEMPTS):
                kept = self._conn is not None and not self._conn.closed and self._pid == os.getpid()
                con = self._connection()
                committing = False
                try:
                    con.execute("BEGIN" if write else "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    result = body(con)
                    committing = True
                    con.execute("COMMIT")
                    return result
                except psycopg.Error as exc:
                    self._rollback(con)
                    if _gone(exc):
                        self._drop()
                        if kept and not committing and attempt == 0:
                            continue  # the server restarted since the last call: try once more on a new connection
                    elif _retryable(exc) and attempt < ATTEMPTS - 1:
                        time.sleep(0.01 * (attempt + 1))
                        continue
                    raise self._translate(exc, write) from None
                except BaseException:
                    self._rollback(con)
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _rollback(self, con) -> None:
        with contextlib.suppress(Exception):
            if not con.closed:
                con.execute("ROLLBACK")

    def _bump(self, con) -> bool:
        """Count a change of the gallery and tell the listeners (at commit); whether the caller's view was current."""
        old = con.execute("UPDATE facelivt_galleries SET version = version + 1 WHERE id = %s RETURNING version - 1",
                          (self._gid,)).fetchone()[0]
        con.execute("SELECT pg_notify(%s, '')", (f"{CHANNEL}_{int(self._gid)}",))
        fresh = old == self._version
        if fresh:
            self._version = old + 1
        return fresh

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, target: PgTarget, readonly: bool = False) -> "PgStore | None":
        """The gallery ``target`` names, or None when the database holds no gallery of that name."""
        store = cls(target, readonly=readonly)
        try:
            gid = store._run(lambda con: _gallery_id(con, target.gallery) if store._schema else None, write=False)
        except BaseException:
            store.close()
            raise
        if gid is None:
            store.close()
            return None
        store._listen(gid)
        return store

    def _listen(self, gid: int) -> None:
        """From now on, be told of the changes other processes commit to gallery ``gid``."""
        self._gid = gid
        psycopg = _psycopg()
        with self._lock:
            try:
                self._connection().execute(f"LISTEN {CHANNEL}_{int(gid)}")
            except psycopg.Error as exc:
                self._drop()
                raise self._translate(exc, write=False) from None
            self._dirty = True

    @classmethod
    def create(cls, target: PgTarget, meta: dict, rows: Snapshot | None = None,
               sources: Sequence[str | None] | None = None,
               hashes: Sequence[str | None] | None = None) -> "tuple[PgStore, bool]":
        """Make gallery ``target`` holding ``meta`` (with ``dim``) and ``rows`` in one transaction:
        ``(store, True)``; when another process made it first, ``(store, False)`` and nothing is written."""
        store = cls(target)

        def body(con):
            made = con.execute("INSERT INTO facelivt_galleries(name, meta, created) VALUES (%s, %s, %s) "
                               "ON CONFLICT (name) DO NOTHING RETURNING id",
                               (target.gallery, json.dumps(meta, allow_nan=False), now())).fetchone()
            if made is None:
                return _gallery_id(con, target.gallery), False
            store._gid = made[0]
            if rows is not None:
                _insert_rows(con, made[0], rows, sources, hashes)
            store._bump(con)
            return made[0], True

        try:
            gid, created = store._run(body, write=True)
            store._listen(gid)
        except BaseException:
            store.close()
            raise
        store._version = None
        return store, created

    def gallery_names(self) -> list[str]:
        """The galleries of the database, sorted."""
        def body(con):
            if not self._schema:  # made since this connection looked?
                self._schema = _ensure_schema(con, create=False, where=self.target.conninfo)
            if not self._schema:
                return []
            return [r[0] for r in con.execute("SELECT name FROM facelivt_galleries ORDER BY name")]

        return self._run(body, write=False)

    # ------------------------------------------------------------------ reading
    def changed(self) -> bool:
        """Whether another process committed a change of this gallery since the last :meth:`snapshot`:
        the notifications that arrived are read without waiting (no query). A lost connection is
        replaced (then True: what happened meanwhile is unknown); a server that cannot be reached
        raises :class:`GalleryUnavailableError`."""
        psycopg = _psycopg()
        with self._lock:
            for attempt in range(2):
                kept = self._conn is not None and not self._conn.closed
                try:
                    self._drain(self._connection())
                    return self._dirty
                except psycopg.Error as exc:
                    self._drop()
                    if not (kept and attempt == 0 and _gone(exc)):
                        raise self._translate(exc, write=False) from None
        return True  # pragma: no cover

    def _drain(self, con) -> None:
        """Read the notifications that arrived; a second read notices a connection the server closed
        (the first one reads its last message)."""
        own = con.info.backend_pid
        for _ in range(2):
            for note in con.notifies(timeout=0):
                if note.pid != own:
                    self._dirty = True

    def snapshot(self) -> Snapshot:
        """The whole gallery, read in one transaction."""
        def body(con):
            self._drain(con)
            self._dirty = False  # what arrives from now on may not be in what is read below
            row = con.execute("SELECT meta, version FROM facelivt_galleries WHERE id = %s", (self._gid,)).fetchone()
            if row is None:
                raise GalleryNotFoundError(f"the gallery {self.target} was removed")
            meta = self._parse_meta(row[0])
            names = dict(con.execute("SELECT id, name FROM facelivt_identities WHERE gallery_id = %s", (self._gid,)))
            return row[1], meta, names, con.execute(_ROWS_QUERY, (self._gid,)).fetchall()

        version, meta, names, rows = self._run(body, write=False)
        dim = meta["dim"]
        bad = sum(len(r[1]) != 4 * dim for r in rows)
        if bad:
            raise GalleryError(f"{self.target} is damaged: {bad} embeddings are not {dim} float32 values; "
                               f"{self._repair_hint()}")
        snap = build_snapshot(rows, names, meta, dim, str(self.target), self._repair_hint())
        self._version = version
        return snap

    def _repair_hint(self) -> str:
        return f"remove them with `facelivt gallery check {shown_url(self.target)} --repair`"

    def _parse_meta(self, text: str) -> dict:
        try:
            meta = parse_meta_value(text)
        except ValueError as exc:
            raise GalleryError(f"{self.target} is damaged: its metadata is not valid JSON ({exc})") from None
        dim = meta.get("dim") if isinstance(meta, dict) else None
        if not isinstance(dim, int) or isinstance(dim, bool) or dim <= 0:
            raise GalleryError(f"{self.target} is damaged: embedding size (meta 'dim') is {dim!r}")
        check_meta(meta, str(self.target))
        return meta

    def counts(self) -> tuple[int, int]:
        """(identities, embeddings)."""
        return self._run(lambda con: con.execute(
            "SELECT count(DISTINCT i.id), count(e.id) FROM facelivt_identities i LEFT JOIN facelivt_embeddings e "
            "ON e.identity_id = i.id WHERE i.gallery_id = %s", (self._gid,)).fetchone(), write=False)

    def identities(self) -> list[IdentityInfo]:
        query = _IDENTITY_QUERY.format(where="")
        rows = self._run(lambda con: con.execute(query, (self._gid,)).fetchall(), write=False)
        return [IdentityInfo(*row) for row in rows]

    def identity(self, name: str) -> IdentityInfo:
        def body(con):
            row = con.execute(_IDENTITY_QUERY.format(where="AND i.name = %s"), (self._gid, name)).fetchone()
            if row is None:
                raise UnknownNameError(f"identity {name!r} is not in the gallery {self.target}")
            sources = con.execute("SELECT e.source FROM facelivt_embeddings e JOIN facelivt_identities i ON i.id = "
                                  "e.identity_id WHERE i.gallery_id = %s AND i.name = %s AND e.source IS NOT NULL "
                                  "GROUP BY e.source ORDER BY min(e.id)", (self._gid, name)).fetchall()
            return IdentityInfo(*row, sources=tuple(r[0] for r in sources))

        return self._run(body, write=False)

    def export_rows(self) -> ExportRows:
        snap = self.snapshot()  # validates the rows
        rows = self._run(lambda con: con.execute(
            "SELECT i.name, coalesce(e.source, ''), e.vector FROM facelivt_embeddings e JOIN facelivt_identities i "
            "ON i.id = e.identity_id WHERE i.gallery_id = %s ORDER BY e.identity_id, e.id", (self._gid,)).fetchall(),
            write=False)
        vectors = np.frombuffer(b"".join(bytes(r[2]) for r in rows), dtype="<f4").astype(np.float32)
        return ExportRows([r[0] for r in rows], [r[1] for r in rows], vectors.reshape(-1, snap.dim), snap.meta)

    def enrolled(self, name: str, hashes: Sequence[str | None], sources: Sequence[str | None]) -> list[bool]:
        def body(con):
            row = con.execute("SELECT id FROM facelivt_identities WHERE gallery_id = %s AND name = %s",
                              (self._gid, name)).fetchone()
            return _known(con, row[0], hashes, sources) if row else [False] * len(hashes)

        return self._run(body, write=False)

    # ------------------------------------------------------------------ writing
    def add(self, name: str, vectors: np.ndarray, sources: Sequence[str | None] | None = None,
            hashes: Sequence[str | None] | None = None) -> tuple[bool, int]:
        """Add ``vectors`` to identity ``name`` (made if new) in one transaction; photos ``name`` has
        (by ``hashes``) are skipped. Returns whether the caller's view was current and the rows added."""
        _check_lengths(len(vectors), sources, hashes)

        def body(con):
            ident, new = _lock_identity(con, self._gid, name)
            keep = list(range(len(vectors)))
            if hashes is not None and not new:
                src = sources if sources is not None else [None] * len(vectors)
                keep = [i for i, known in enumerate(_known(con, ident, hashes, src)) if not known]
            pick = (lambda items: None if items is None else [items[i] for i in keep])
            _insert(con, [ident] * len(keep), vectors[keep], pick(sources), pick(hashes), now())
            if not keep:
                return self._current(con), 0
            return self._bump(con), len(keep)

        return self._run(body, write=True)

    def _current(self, con) -> bool:
        row = con.execute("SELECT version FROM facelivt_galleries WHERE id = %s", (self._gid,)).fetchone()
        return row is not None and row[0] == self._version

    def remove(self, name: str, erase: bool = True) -> bool:
        """Delete identity ``name`` and its embeddings in one transaction (``erase`` has no PostgreSQL
        equivalent: see the module's notes). Returns whether the caller's view was current."""
        def body(con):
            if con.execute("DELETE FROM facelivt_identities WHERE gallery_id = %s AND name = %s",
                           (self._gid, name)).rowcount == 0:
                raise UnknownNameError(f"identity {name!r} is not in the gallery {self.target}")
            return self._bump(con)

        return self._run(body, write=True)

    def rename(self, old: str, new: str) -> bool:
        def body(con):
            if con.execute("SELECT 1 FROM facelivt_identities WHERE gallery_id = %s AND name = %s",
                           (self._gid, new)).fetchone():
                raise InvalidInputError(f"identity {new!r} is in the gallery already ({self.target}): "
                                        "remove it first, or choose another name")
            if con.execute("UPDATE facelivt_identities SET name = %s WHERE gallery_id = %s AND name = %s",
                           (new, self._gid, old)).rowcount == 0:
                raise UnknownNameError(f"identity {old!r} is not in the gallery {self.target}")
            return self._bump(con)

        return self._run(body, write=True)

    def set_meta(self, items: dict) -> None:
        """Write metadata keys (None deletes one) in one transaction."""
        check_meta({k: v for k, v in items.items() if v is not None}, str(self.target))

        def body(con):
            text = con.execute("SELECT meta FROM facelivt_galleries WHERE id = %s FOR UPDATE", (self._gid,)).fetchone()
            meta = self._parse_meta(text[0])
            for key, value in items.items():
                if value is None:
                    meta.pop(key, None)
                else:
                    meta[key] = value
            con.execute("UPDATE facelivt_galleries SET meta = %s WHERE id = %s",
                        (json.dumps(meta, allow_nan=False), self._gid))
            self._bump(con)

        self._run(body, write=True)

    def replace(self, rows: Snapshot, meta: dict) -> None:
        """Replace every identity, embedding and metadata key, in one transaction."""
        def body(con):
            con.execute("DELETE FROM facelivt_identities WHERE gallery_id = %s", (self._gid,))
            con.execute("UPDATE facelivt_galleries SET meta = %s WHERE id = %s",
                        (json.dumps(meta, allow_nan=False), self._gid))
            _insert_rows(con, self._gid, rows)
            self._bump(con)

        self._run(body, write=True)

    # ------------------------------------------------------------------ check
    def problems(self) -> list[GalleryProblem]:
        """Embeddings that cannot be searched and identities without embeddings (the foreign keys
        PostgreSQL enforces leave no embedding without its identity)."""
        return self._run(lambda con: _find_problems(con, self._gid, self.snapshot_dim(con)), write=False)

    def repair(self) -> list[GalleryProblem]:
        """Delete the rows :meth:`problems` finds, in one transaction; what was removed."""
        def body(con):
            found = _find_problems(con, self._gid, self.snapshot_dim(con))
            for problem in found:
                table = "facelivt_embeddings" if problem.table == "embeddings" else "facelivt_identities"
                con.execute(f"DELETE FROM {table} WHERE id = ANY(%s)", (list(problem.ids),))
            if found:
                self._bump(con)
            return found

        return self._run(body, write=True)

    def snapshot_dim(self, con) -> int:
        return self._parse_meta(con.execute("SELECT meta FROM facelivt_galleries WHERE id = %s",
                                            (self._gid,)).fetchone()[0])["dim"]


def shown_url(target: PgTarget) -> str:
    """The URL of ``target`` as a command line takes it (password hidden)."""
    url = redact_url(target.conninfo)
    if target.gallery is None:
        return url
    return f"'{url}{'&' if urlsplit(url).query else '?'}gallery={target.gallery}'"


def _ensure_schema(con, create: bool, where: str) -> bool:
    """Whether the tables are there (made now when ``create``); a newer schema is refused."""
    if not con.execute("SELECT to_regclass('facelivt_schema') IS NOT NULL").fetchone()[0]:
        if not create:
            return False
        con.execute("BEGIN")
        try:
            con.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))  # one process sets up, others wait
            for statement in _SCHEMA:
                con.execute(statement)
            con.execute("INSERT INTO facelivt_schema(version) SELECT %s WHERE NOT EXISTS "
                        "(SELECT 1 FROM facelivt_schema)", (SCHEMA_VERSION,))
            con.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(Exception):
                con.execute("ROLLBACK")
            raise
    version = con.execute("SELECT max(version) FROM facelivt_schema").fetchone()[0]
    if version is not None and version > SCHEMA_VERSION:
        raise GalleryError(f"the galleries in {redact_url(where)} were written by a newer facelivt (schema {version}; "
                           f"this version reads schema {SCHEMA_VERSION}): upgrade facelivt to use them")
    return True


def _gallery_id(con, name: str) -> int | None:
    row = con.execute("SELECT id FROM facelivt_galleries WHERE name = %s", (name,)).fetchone()
    return None if row is None else row[0]


def _lock_identity(con, gid: int, name: str) -> tuple[int, bool]:
    """Identity ``name``'s id, made if new, its row locked until commit; whether it is new. Two
    transactions making the same identity: the second waits for the first, then finds its row."""
    while True:
        made = con.execute("INSERT INTO facelivt_identities(gallery_id, name, added) VALUES (%s, %s, %s) "
                           "ON CONFLICT (gallery_id, name) DO NOTHING RETURNING id", (gid, name, now())).fetchone()
        if made is not None:
            return made[0], True
        row = con.execute("SELECT id FROM facelivt_identities WHERE gallery_id = %s AND name = %s FOR UPDATE",
                          (gid, name)).fetchone()
        if row is not None:
            return row[0], False  # else removed meanwhile: make it again


def _insert_rows(con, gid: int, rows: Snapshot, sources=None, hashes=None) -> None:
    _check_lengths(len(rows.vectors), sources, hashes)
    stamp = now()
    ids = [con.execute("INSERT INTO facelivt_identities(gallery_id, name, added) VALUES (%s, %s, %s) RETURNING id",
                       (gid, n, stamp)).fetchone()[0] for n in rows.names]
    _insert(con, [ids[int(lab)] for lab in rows.labels], rows.vectors, sources, hashes, stamp)


def _insert(con, owners: Sequence[int], vectors: np.ndarray, sources, hashes, stamp: str) -> None:
    n = len(owners)
    src = [None if x is None else str(x) for x in sources] if sources is not None else [None] * n
    digests = list(hashes) if hashes is not None else [None] * n
    with con.cursor() as cur:
        cur.executemany("INSERT INTO facelivt_embeddings(identity_id, vector, source, added, sha256) "
                        "VALUES (%s, %s, %s, %s, %s)",
                        [(o, np.ascontiguousarray(v, dtype="<f4").tobytes(), s, stamp, h)
                         for o, v, s, h in zip(owners, vectors, src, digests)])


def _check_lengths(n: int, sources, hashes) -> None:
    for given, what in ((sources, "sources"), (hashes, "hashes")):
        if given is not None and len(given) != n:
            raise InvalidInputError(f"{n} embeddings but {len(given)} {what}")


def _known(con, ident: int, hashes: Sequence[str | None], sources: Sequence[str | None]) -> list[bool]:
    """Whether identity ``ident`` has each photo: by content, or by path for rows recorded without it."""
    rows = con.execute("SELECT sha256, source FROM facelivt_embeddings WHERE identity_id = %s", (ident,)).fetchall()
    digests = {h for h, _ in rows if h is not None}
    paths = {src for h, src in rows if h is None and src is not None}
    return [(h is not None and h in digests) or (src is not None and str(src) in paths)
            for h, src in zip(hashes, sources)]


def _find_problems(con, gid: int, dim: int) -> list[GalleryProblem]:
    found = []
    rows = con.execute("SELECT e.id, e.vector FROM facelivt_embeddings e JOIN facelivt_identities i ON i.id = "
                       "e.identity_id WHERE i.gallery_id = %s ORDER BY e.id", (gid,)).fetchall()
    bad = []
    for ident, blob in rows:
        vector = np.frombuffer(bytes(blob), dtype="<f4") if len(blob) == 4 * dim else None
        if vector is None or not np.isfinite(vector).all() or not np.abs(vector).sum() > 0:
            bad.append(ident)
    if bad:
        found.append(GalleryProblem("unusable embeddings", len(bad), f"{len(bad)} embeddings are not {dim} finite "
                                    "float32 values with a non-zero norm", "embeddings", tuple(bad)))
    empty = con.execute("SELECT i.id, i.name FROM facelivt_identities i WHERE i.gallery_id = %s AND NOT EXISTS "
                        "(SELECT 1 FROM facelivt_embeddings e WHERE e.identity_id = i.id "
                        "AND NOT e.id = ANY(%s::bigint[])) "
                        "ORDER BY i.id", (gid, bad)).fetchall()
    if empty:
        names = ", ".join(str(r[1]) for r in empty[:10]) + (", ..." if len(empty) > 10 else "")
        found.append(GalleryProblem("empty identities", len(empty), f"{len(empty)} identities have no embedding and "
                                    f"cannot be found ({names})", "identities", tuple(r[0] for r in empty)))
    return found


def check_pg_gallery(url: str, *, repair: bool = False) -> GalleryCheck:
    """:func:`~facelivt.inference.gallery_store.check_gallery` for a gallery in PostgreSQL."""
    target = parse_pg_url(url)
    store = PgStore.open(target, readonly=not repair)
    if store is None:
        raise GalleryNotFoundError(f"no gallery {target.gallery!r} in {redact_url(target.conninfo)}")
    return check_store(store, target, repair)
