"""The service's API keys, kept in one SQLite file (``facelivt serve keys create|list|revoke``).

A key is given to its user once, as a token ``flvt_<id>_<secret>``: ``id`` (12 hex digits, random) is
public and names the key in ``keys list``, the audit log and ``keys revoke``; ``secret``
(``secrets.token_urlsafe(32)``: 256 random bits) is never stored. The file holds the SHA-256 of the
secret only. SHA-256 and not a slow password hash (scrypt, bcrypt): a slow hash protects *guessable*
secrets from being guessed offline from a stolen file, and 256 random bits cannot be guessed at any
speed; a slow hash would cost every request tens of milliseconds of CPU (a gift to whoever floods the
server with bad keys) and buy nothing. A presented secret's hash is compared with
:func:`hmac.compare_digest` (time independent of where the hashes differ), also for an unknown id
(against a dummy hash), so timing tells nothing about which ids or secrets exist.

Each key has a scope, ``read`` or ``write`` (write implies read), and may be limited to one gallery
(:func:`allows`). A revoked key stays in the file, listed as revoked, and is refused.

The file is made with mode 0600 (only its owner reads it). Several processes may use it at once: each
change is one ``BEGIN IMMEDIATE`` transaction and a busy file is waited for (:data:`BUSY_TIMEOUT`).
Reading never creates the file: no file is a store without keys.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import hmac
import os
import re
import secrets
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from facelivt.errors import FaceLiVTError, InvalidInputError, OutputWriteError, UnknownNameError
from facelivt.inference.gallery_set import check_gallery_name
from facelivt.inference.gallery_store import now
from facelivt.models.hub import facelivt_home
from facelivt.transactions import sqlite_transaction

SCOPES = ("read", "write")
#: The file ``facelivt serve`` and ``facelivt serve keys`` use unless told otherwise (in FACELIVT_HOME).
DEFAULT_FILE_NAME = "serve-keys.sqlite"
#: Seconds a change waits for another process's transaction to end before giving up.
BUSY_TIMEOUT = 30.0
TOKEN_PREFIX = "flvt"
TOKEN_PATTERN = re.compile(r"flvt_(?P<id>[0-9a-f]{12})_(?P<secret>[A-Za-z0-9_-]{43})")
KEY_ID_PATTERN = re.compile(r"[0-9a-f]{12}")
MAX_NAME = 200
APPLICATION_ID = 0x464C4B59  # "FLKY": marks the file as a facelivt key store
SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    scope TEXT NOT NULL CHECK (scope IN ('read', 'write')),
    gallery TEXT,
    secret_sha256 TEXT NOT NULL,
    created TEXT NOT NULL,
    revoked TEXT
)"""
_DUMMY_HASH = hashlib.sha256(b"no such key").hexdigest()
_ERRNO = {"SQLITE_FULL": errno.ENOSPC, "SQLITE_READONLY": errno.EROFS, "SQLITE_CANTOPEN": errno.EACCES,
          "SQLITE_BUSY": errno.EBUSY, "SQLITE_PERM": errno.EACCES}


class KeyStoreError(FaceLiVTError, ValueError):
    """A key store file that cannot be used: not a facelivt key store, damaged, newer, or unreadable."""


class KeyStoreWriteError(OutputWriteError):
    """The key store could not be changed (read-only folder or file, disk full, busy too long); it is
    as it was."""


class UnknownKeyError(UnknownNameError):
    """No key of that id in the store."""


class MalformedTokenError(InvalidInputError):
    """A string that is not a facelivt API key token (``flvt_<id>_<secret>``)."""


@dataclass(frozen=True)
class ApiKey:
    """One API key as the store describes it (never its secret)."""

    id: str
    name: str
    scope: str  # "read" | "write"
    gallery: str | None
    created: str
    revoked: bool

    def to_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "scope": self.scope, "gallery": self.gallery,
                "created": self.created, "revoked": self.revoked}


def default_keys_path() -> Path:
    """``FACELIVT_HOME/serve-keys.sqlite`` (read from the environment now)."""
    return facelivt_home() / DEFAULT_FILE_NAME


def parse_token(token: object) -> tuple[str, str]:
    """``(key id, secret)`` of a token, else :class:`MalformedTokenError` (which never quotes the token)."""
    match = TOKEN_PATTERN.fullmatch(token) if isinstance(token, str) else None
    if match is None:
        raise MalformedTokenError(f"not a facelivt API key: expected {TOKEN_PREFIX}_<12 hex digits>_<43 characters>")
    return match["id"], match["secret"]


def allows(key: ApiKey, write: bool, gallery: str | None) -> bool:
    """Whether ``key`` may make a request: ``write`` (it changes a gallery) needs scope ``write``, a read
    either scope; a key limited to a gallery may touch no other. ``gallery`` None: the request concerns
    no particular gallery (detect, embed, verify), which any active key may make."""
    if key.revoked or key.scope not in SCOPES:
        return False
    if write and key.scope != "write":
        return False
    return key.gallery is None or gallery is None or gallery == key.gallery


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME \
            or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise InvalidInputError(f"invalid key name {name!r}: use 1 to {MAX_NAME} characters, no control characters")
    return name


def _check_scope(scope: object) -> str:
    if scope not in SCOPES:
        raise InvalidInputError(f"unknown scope {scope!r}: use 'read' or 'write' (write implies read)")
    return scope


def _key(row) -> ApiKey:
    return ApiKey(id=row[0], name=row[1], scope=row[2], gallery=row[3], created=row[4], revoked=row[5] is not None)


class KeyStore:
    """The API keys in the SQLite file ``path`` (made, mode 0600, by the first :meth:`create`)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise KeyStoreError(f"{self.path} is a folder, not a key store file")

    # ------------------------------------------------------------------ changes
    def create(self, name: str, scope: str = "read", gallery: str | None = None) -> tuple[ApiKey, str]:
        """A new active key: ``(key, token)``. The token is the only copy of its secret: show it once."""
        name, scope = _check_name(name), _check_scope(scope)
        if gallery is not None:
            check_gallery_name(gallery)
        secret = secrets.token_urlsafe(32)
        with self._change() as con:
            key_id = self._new_id(con)
            key = ApiKey(key_id, name, scope, gallery, now(), revoked=False)
            con.execute("INSERT INTO api_keys (id, name, scope, gallery, secret_sha256, created, revoked) "
                        "VALUES (?, ?, ?, ?, ?, ?, NULL)", (key_id, name, scope, gallery, _hash(secret), key.created))
        return key, f"{TOKEN_PREFIX}_{key_id}_{secret}"

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke key ``key_id`` for good (it stays listed, as revoked); :class:`UnknownKeyError` if there
        is none. Revoking a revoked key changes nothing."""
        if not isinstance(key_id, str) or not KEY_ID_PATTERN.fullmatch(key_id):
            raise UnknownKeyError(f"no API key {key_id!r}: a key id is 12 hex digits (see `facelivt serve keys list`)")
        if not self.path.is_file():
            raise UnknownKeyError(f"no API key {key_id!r} in {self.path} (it holds no keys)")
        with self._change() as con:
            con.execute("UPDATE api_keys SET revoked = ? WHERE id = ? AND revoked IS NULL", (now(), key_id))
            row = con.execute("SELECT id, name, scope, gallery, created, revoked FROM api_keys WHERE id = ?",
                              (key_id,)).fetchone()
        if row is None:
            raise UnknownKeyError(f"no API key {key_id!r} in {self.path}")
        return _key(row)

    # ------------------------------------------------------------------ reading
    def list(self) -> list[ApiKey]:
        """Every key, revoked ones included, oldest first."""
        with self._read() as con:
            if con is None:
                return []
            rows = con.execute("SELECT id, name, scope, gallery, created, revoked FROM api_keys "
                               "ORDER BY created, rowid").fetchall()
        return [_key(r) for r in rows]

    def check(self, token: str) -> ApiKey | None:
        """The active key whose token this is, else None (malformed, unknown id, wrong secret, revoked).
        The secret's hash is compared in constant time, against a dummy hash for an unknown id."""
        try:
            key_id, secret = parse_token(token)
        except MalformedTokenError:
            return None
        with self._read() as con:
            row = None if con is None else con.execute(
                "SELECT id, name, scope, gallery, created, revoked, secret_sha256 FROM api_keys WHERE id = ?",
                (key_id,)).fetchone()
        same = hmac.compare_digest(_hash(secret), row[6] if row is not None else _DUMMY_HASH)
        if row is None or not same or row[5] is not None:
            return None
        return _key(row)

    def any_active(self) -> bool:
        """Whether the store holds a key that is not revoked (else the server needs no key)."""
        with self._read() as con:
            return con is not None and con.execute(
                "SELECT 1 FROM api_keys WHERE revoked IS NULL LIMIT 1").fetchone() is not None

    # ------------------------------------------------------------------ the file
    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection | None]:
        """A connection for reading (None when there is no store yet); never creates the file."""
        if not self.path.is_file():
            yield None
            return
        mode = "rw" if os.access(self.path, os.W_OK) else "ro"
        with self._errors(writing=False):
            con = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode={mode}", uri=True,
                                  timeout=BUSY_TIMEOUT, isolation_level=None)
            try:
                with sqlite_transaction(con):
                    yield con if self._check_kind(con) else None
            finally:
                con.close()

    @contextlib.contextmanager
    def _change(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction on the store, made (mode 0600) and set up if new."""
        self._make_file()
        with self._errors(writing=True):
            con = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=rw", uri=True,
                                  timeout=BUSY_TIMEOUT, isolation_level=None)
            try:
                con.execute("PRAGMA synchronous = FULL")
                with sqlite_transaction(con, immediate=True):
                    if not self._check_kind(con):
                        self._set_up(con)
                        with contextlib.suppress(PermissionError):  # an empty file made by someone else
                            os.chmod(self.path, 0o600)
                    yield con
            finally:
                con.close()

    def _make_file(self) -> None:
        """Make the (empty) file with mode 0600 unless it exists; a folder that cannot be written, or a
        file in the way of its folder, raises :class:`KeyStoreWriteError`."""
        if self.path.is_file():
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return  # another process made it meanwhile
        except OSError as exc:
            raise KeyStoreWriteError(self.path, exc) from exc
        try:
            os.fchmod(fd, 0o600)  # whatever the umask
        finally:
            os.close(fd)

    def _check_kind(self, con: sqlite3.Connection) -> bool:
        """True for a key store, False for an empty file (not set up yet); anything else raises."""
        app = con.execute("PRAGMA application_id").fetchone()[0]
        version = con.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if app == 0 and version == 0 and not tables:
            return False
        if app != APPLICATION_ID:
            raise KeyStoreError(f"{self.path} is an SQLite database but not a facelivt key store")
        if version > SCHEMA_VERSION:
            raise KeyStoreError(f"{self.path} was written by a newer facelivt (key store schema {version}): upgrade "
                                "facelivt to use it")
        if "api_keys" not in tables:
            raise KeyStoreError(f"{self.path} is damaged: it has no api_keys table")
        return True

    @staticmethod
    def _set_up(con: sqlite3.Connection) -> None:
        con.execute(_SCHEMA)
        con.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @staticmethod
    def _new_id(con: sqlite3.Connection) -> str:
        while True:  # 48 random bits: a clash is unlikely, and then another id is drawn
            key_id = secrets.token_hex(6)
            if con.execute("SELECT 1 FROM api_keys WHERE id = ?", (key_id,)).fetchone() is None:
                return key_id

    @contextlib.contextmanager
    def _errors(self, writing: bool) -> Iterator[None]:
        """SQLite's errors as :class:`KeyStoreError` / :class:`KeyStoreWriteError` naming the file."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            code = getattr(exc, "sqlite_errorname", "")
            primary = "_".join(code.split("_")[:2])
            if primary in ("SQLITE_NOTADB", "SQLITE_CORRUPT"):
                raise KeyStoreError(f"{self.path} is not a facelivt key store, or is damaged ({exc})") from exc
            if writing or primary in ("SQLITE_FULL", "SQLITE_READONLY"):
                reason = str(exc)
                if primary in ("SQLITE_CANTOPEN", "SQLITE_READONLY") and not os.access(self.path.parent, os.W_OK):
                    reason += ": its folder cannot be written (SQLite writes its journal there)"
                cause = OSError(_ERRNO.get(primary, errno.EIO), reason)
                raise KeyStoreWriteError(self.path, cause) from exc
            raise KeyStoreError(f"cannot read key store {self.path}: {exc}") from exc
