"""The service's API keys (issue 24, item 4): stored hashed in a 0600 SQLite file, checked in constant
time, scoped to read or write and optionally to one gallery, revoked for good; several processes at once."""
from __future__ import annotations

import hmac
import json
import os
import sqlite3
import stat

import pytest

from gallery_helpers import read_only, run_together
from facelivt.errors import FaceLiVTError, InvalidInputError, OutputWriteError, UnknownNameError
from facelivt.serve import keys as keys_module
from facelivt.serve.keys import (ApiKey, KeyStore, KeyStoreError, KeyStoreWriteError, MalformedTokenError,
                                 UnknownKeyError, allows, default_keys_path, parse_token)


@pytest.fixture
def store(tmp_path) -> KeyStore:
    return KeyStore(tmp_path / "keys.sqlite")


def _secret(token: str) -> str:
    return token.split("_", 2)[2]


def _file_bytes(folder) -> bytes:
    """Every byte of every file in ``folder`` (the database and any journal SQLite left)."""
    return b"".join(p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file())


# ----------------------------------------------------------------------------------------- at rest

def test_the_secret_is_not_stored_only_its_hash(store, tmp_path):
    key, token = store.create("ci", scope="write")
    secret = _secret(token)
    assert token == f"flvt_{key.id}_{secret}" and len(secret) >= 43
    data = _file_bytes(tmp_path)
    assert secret.encode() not in data and token.encode() not in data
    assert key.id.encode() in data  # the file really is the store that was written
    assert keys_module._hash(secret).encode() in data


def test_the_store_file_is_made_readable_by_its_owner_only(tmp_path):
    old = os.umask(0)  # even a permissive umask gives 0600
    try:
        store = KeyStore(tmp_path / "sub" / "keys.sqlite")
        store.create("ci")
    finally:
        os.umask(old)
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600


def test_an_empty_file_becomes_a_store_readable_by_its_owner_only(store):
    store.path.touch(mode=0o644)
    store.path.chmod(0o644)
    assert store.list() == [] and not store.any_active()
    key, token = store.create("a")
    assert store.check(token) == key
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600


def test_a_path_with_uri_characters_is_a_plain_file_name(tmp_path):
    store = KeyStore(tmp_path / "a dir?mode=ro#x" / "k%20eys.sqlite")
    key, token = store.create("a")
    assert store.check(token) == key
    assert (tmp_path / "a dir?mode=ro#x" / "k%20eys.sqlite").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a dir?mode=ro#x"]


def test_reading_a_missing_store_creates_nothing(store):
    assert store.list() == [] and store.any_active() is False
    assert store.check("flvt_0123456789ab_" + "A" * 43) is None
    assert not store.path.exists()


def test_the_default_file_is_in_facelivt_home(tmp_path, monkeypatch):
    monkeypatch.setenv("FACELIVT_HOME", str(tmp_path / "home"))
    assert default_keys_path() == tmp_path / "home" / "serve-keys.sqlite"


# ----------------------------------------------------------------------------------------- check

def test_the_right_token_is_accepted_and_describes_its_key(store):
    key, token = store.create("kiosk", scope="read", gallery="staff")
    assert store.check(token) == key
    assert key == ApiKey(key.id, "kiosk", "read", "staff", key.created, revoked=False)
    assert store.any_active()


def test_a_wrong_secret_an_unknown_id_and_a_revoked_key_are_refused(store):
    key, token = store.create("a", scope="write")
    other, other_token = store.create("b")
    secret = _secret(token)
    wrong = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    assert store.check(f"flvt_{key.id}_{wrong}") is None
    assert store.check(f"flvt_{other.id}_{secret}") is None  # a secret is bound to its own key
    unknown = "0" * 12 if key.id != "0" * 12 else "1" * 12
    assert store.check(f"flvt_{unknown}_{secret}") is None
    store.revoke(key.id)
    assert store.check(token) is None
    assert store.check(other_token) == other


@pytest.mark.parametrize("token", ["", "flvt_", "flvt", "Bearer x", "flvt_0123456789AB_" + "A" * 43,
                                   "flvt_0123456789ab_" + "A" * 42, "flvt_0123456789ab_" + "A" * 44,
                                   "flvt_0123456789ab_" + "A" * 42 + "=", " flvt_0123456789ab_" + "A" * 43,
                                   None, b"flvt_0123456789ab_" + b"A" * 43, 12])
def test_a_malformed_token_is_refused(store, token):
    store.create("a")
    assert store.check(token) is None
    with pytest.raises(MalformedTokenError) as info:
        parse_token(token)
    assert isinstance(info.value, InvalidInputError)


def test_a_malformed_token_error_does_not_quote_the_token():
    with pytest.raises(MalformedTokenError) as info:
        parse_token("flvt_0123456789ab_secret-that-is-too-short")
    assert "secret-that-is-too-short" not in str(info.value)


def test_every_check_compares_one_hash_in_constant_time_known_id_or_not(store, monkeypatch):
    """The comparison goes through hmac.compare_digest, once per well-formed token, also for an unknown id
    (against a dummy hash), so the time does not tell which ids exist."""
    calls = []
    real = hmac.compare_digest

    def counting(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(keys_module.hmac, "compare_digest", counting)
    key, token = store.create("a")
    assert store.check(token) == key
    unknown = "f" * 12 if key.id != "f" * 12 else "e" * 12
    assert store.check(f"flvt_{unknown}_{_secret(token)}") is None
    assert len(calls) == 2
    assert all(len(a) == len(b) == 64 for a, b in calls)


# ----------------------------------------------------------------------------------------- scopes

def _key(scope: str, gallery: str | None = None, revoked: bool = False) -> ApiKey:
    return ApiKey("0123456789ab", "k", scope, gallery, "2026-01-01T00:00:00Z", revoked)


@pytest.mark.parametrize("scope, gallery, write, target, allowed", [
    ("read", None, False, "staff", True),
    ("read", None, True, "staff", False),
    ("write", None, False, "staff", True),   # write implies read
    ("write", None, True, "staff", True),
    ("read", None, False, None, True),       # detect / embed / verify: no gallery
    ("write", "staff", True, "staff", True),
    ("write", "staff", True, "guests", False),
    ("read", "staff", False, "guests", False),
    ("read", "staff", False, None, True),
    ("read", "staff", True, None, False),
])
def test_allows_follows_scope_and_gallery(scope, gallery, write, target, allowed):
    assert allows(_key(scope, gallery), write=write, gallery=target) is allowed


def test_a_revoked_key_allows_nothing():
    assert not allows(_key("write", revoked=True), write=False, gallery=None)


def test_the_scope_and_gallery_given_at_creation_are_kept(store):
    reader, reader_token = store.create("r")
    writer, writer_token = store.create("w", scope="write", gallery="staff")
    assert store.check(reader_token).scope == "read" and store.check(reader_token).gallery is None
    checked = store.check(writer_token)
    assert allows(checked, write=True, gallery="staff") and not allows(checked, write=True, gallery="other")
    assert not allows(store.check(reader_token), write=True, gallery="staff")


# ----------------------------------------------------------------------------------------- revoke / list

def test_revoked_keys_stay_listed_as_revoked(store):
    a, _ = store.create("a")
    b, _ = store.create("b", scope="write")
    revoked = store.revoke(a.id)
    assert revoked.id == a.id and revoked.revoked
    assert [(k.id, k.revoked) for k in store.list()] == [(a.id, True), (b.id, False)]
    assert store.revoke(a.id).revoked  # twice: still revoked, no error
    store.revoke(b.id)
    assert not store.any_active() and len(store.list()) == 2


@pytest.mark.parametrize("key_id", ["0123456789ab", "xyz", "", "0123456789ab' OR 1=1 --"])
def test_revoking_an_unknown_key_says_so(store, key_id):
    store.create("a")
    with pytest.raises(UnknownKeyError) as info:
        store.revoke(key_id)
    assert isinstance(info.value, UnknownNameError) and "no API key" in str(info.value)
    assert not store.list()[0].revoked


def test_revoking_in_a_missing_store_says_so_and_creates_nothing(store):
    with pytest.raises(UnknownKeyError):
        store.revoke("0123456789ab")
    assert not store.path.exists()


# ----------------------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("kwargs, words", [
    ({"name": "a", "scope": "admin"}, "unknown scope"),
    ({"name": "a", "scope": "READ"}, "unknown scope"),
    ({"name": ""}, "invalid key name"),
    ({"name": "   "}, "invalid key name"),
    ({"name": "a\nb"}, "invalid key name"),
    ({"name": "x" * 201}, "invalid key name"),
    ({"name": "a", "gallery": "../etc"}, "invalid gallery name"),
    ({"name": "a", "gallery": "a/b"}, "invalid gallery name"),
    ({"name": "a", "gallery": ""}, "invalid gallery name"),
])
def test_bad_arguments_are_refused_before_anything_is_written(store, kwargs, words):
    with pytest.raises(InvalidInputError, match=words):
        store.create(**kwargs)
    assert not store.path.exists()


def test_a_file_that_is_not_a_key_store_is_refused(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a database at all, just words " * 20)
    for action in (lambda s: s.list(), lambda s: s.create("a"), lambda s: s.check("flvt_0123456789ab_" + "A" * 43)):
        with pytest.raises(KeyStoreError, match="not a facelivt key store"):
            action(KeyStore(text))
    assert text.read_text().startswith("not a database")


def test_another_sqlite_database_is_refused_and_left_alone(tmp_path):
    other = tmp_path / "other.sqlite"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    before = other.read_bytes()
    with pytest.raises(KeyStoreError, match="SQLite database but not a facelivt key store"):
        KeyStore(other).create("a")
    with pytest.raises(KeyStoreError):
        KeyStore(other).any_active()
    assert other.read_bytes() == before


def test_a_store_from_a_newer_facelivt_is_refused(store):
    store.create("a")
    con = sqlite3.connect(store.path)
    con.execute("PRAGMA user_version = 99")
    con.commit()
    con.close()
    with pytest.raises(KeyStoreError, match="newer facelivt"):
        store.list()


def test_a_folder_is_not_a_key_store(tmp_path):
    with pytest.raises(KeyStoreError, match="is a folder"):
        KeyStore(tmp_path)


def test_a_file_in_the_way_of_the_folder_is_a_write_error(tmp_path):
    (tmp_path / "plain").write_text("x")
    with pytest.raises(KeyStoreWriteError) as info:
        KeyStore(tmp_path / "plain" / "keys.sqlite").create("a")
    assert isinstance(info.value, OutputWriteError) and "cannot write" in str(info.value)


def test_a_read_only_folder_refuses_changes_and_still_serves_reads(tmp_path):
    folder = tmp_path / "keys"
    folder.mkdir()
    key, token = KeyStore(folder / "keys.sqlite").create("a")
    with read_only(folder) as view:
        with pytest.raises(KeyStoreWriteError) as info:
            KeyStore(view / "new.sqlite").create("b")
        assert isinstance(info.value, FaceLiVTError) and "new.sqlite" in str(info.value)
        store = KeyStore(view / "keys.sqlite")
        assert store.check(token) == key and store.any_active()
        with pytest.raises(KeyStoreWriteError):
            store.create("c")
        with pytest.raises(KeyStoreWriteError):
            store.revoke(key.id)
        assert store.list() == [key]
    assert not (folder / "new.sqlite").exists()


# ----------------------------------------------------------------------------------------- processes

CREATE_KEYS = r"""
import json, sys
from facelivt.serve.keys import KeyStore
store = KeyStore(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
made = [store.create(f"{sys.argv[2]}-{i}", scope="write")[1] for i in range(int(sys.argv[3]))]
print(json.dumps(made), flush=True)
"""


def test_processes_creating_keys_at_once_all_keep_theirs(tmp_path):
    """Four processes, released together, each create keys in one new store: every key is kept and
    every token checks (the first transaction also sets the file up, exactly once)."""
    path = tmp_path / "keys.sqlite"
    n, each = 4, 15
    outs = run_together(CREATE_KEYS, [[str(path), f"p{i}", str(each)] for i in range(n)])
    tokens = [t for out in outs for t in json.loads(out.strip().splitlines()[-1])]
    store = KeyStore(path)
    listed = store.list()
    assert len(tokens) == len(listed) == n * each
    assert sorted(k.name for k in listed) == sorted(f"p{i}-{j}" for i in range(n) for j in range(each))
    assert len({k.id for k in listed}) == n * each
    assert all(store.check(t) is not None for t in tokens)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
