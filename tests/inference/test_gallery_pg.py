"""Galleries in a real PostgreSQL server (the ``pg_server`` fixture of tests/conftest.py): the same
behaviour as the SQLite gallery, several processes sharing one gallery (LISTEN / NOTIFY), concurrent
enrolments, a process killed inside its transaction, the server going away and coming back."""
from __future__ import annotations

import json
import os
import signal
import time

import numpy as np
import psycopg
import pytest
from gallery_helpers import TOY_META, start_python, unit_rows

from facelivt.errors import InvalidInputError, UnknownNameError
from facelivt.inference import (
    Gallery,
    GalleryError,
    GalleryMismatchError,
    GalleryNotFoundError,
    GalleryUnavailableError,
    GalleryWriteError,
)
from facelivt.inference.gallery_pg import check_pg_gallery, parse_pg_url, redact_url
from facelivt.inference.gallery_set import GallerySet

DIM = 8
#: Seconds a test waits for another process (bounded; the wait ends as soon as the condition holds).
PATIENCE = 60.0


def wait_for(condition, what: str):
    deadline = time.monotonic() + PATIENCE
    while not (value := condition()):
        assert time.monotonic() < deadline, f"waited {PATIENCE} s for {what}"
        time.sleep(0.02)
    return value


def _url(database: str, gallery: str = "g") -> str:
    return f"{database}?gallery={gallery}"


def test_urls_name_one_gallery_and_hide_passwords():
    target = parse_pg_url("postgresql://u:s3cret@db.example:5433/faces?gallery=staff&sslmode=disable")
    assert target.gallery == "staff" and "gallery" not in target.conninfo and "sslmode=disable" in target.conninfo
    assert "s3cret" not in str(target) and "u:***@db.example:5433/faces" in str(target)
    assert parse_pg_url("postgres://u@/faces?host=/run/pg").gallery == "default"
    assert "host=%2Frun%2Fpg" in parse_pg_url("postgres://u@/faces?host=/run/pg").conninfo
    assert redact_url("postgresql://u@h/db?password=pw&gallery=x") == "postgresql://u@h/db?password=***&gallery=x"
    for bad in ("postgresql://u@h/db?gallery=../x", "postgresql://u@h/db?gallery=a&gallery=b"):
        with pytest.raises(InvalidInputError):
            parse_pg_url(bad)
    with pytest.raises(InvalidInputError, match="leave out gallery="):
        parse_pg_url("postgresql://u@h/db?gallery=a", gallery=False)


def _ranked(results) -> list:
    """Search results with scores to 6 places (a template summed in another order differs in the last bits)."""
    return [[(m.name, round(m.score, 6)) for m in row] for row in results]


def _exercise(gallery: Gallery) -> None:
    gallery.enroll_embeddings("alice", unit_rows(3, DIM, 0), sources=["a1.jpg", "a2.jpg", "a3.jpg"],
                              hashes=["h1", "h2", "h3"])
    assert gallery.enroll_embeddings("alice", unit_rows(2, DIM, 0)[:2], sources=["a1.jpg", "x.jpg"],
                                     hashes=["h1", "h2"]) == 0  # photos it has: skipped
    gallery.enroll_embeddings("bob", unit_rows(2, DIM, 1))
    gallery.enroll_embeddings("carol", unit_rows(1, DIM, 2), sources=["c.jpg"])
    gallery.rename("bob", "robert")
    gallery.remove("carol")
    gallery.enroll_embeddings("dave", unit_rows(2, DIM, 3))


def test_same_behaviour_as_the_sqlite_gallery(pg_database, tmp_path):
    pg = Gallery.open(_url(pg_database), create=True, dim=DIM, metadata=TOY_META, backend="numpy")
    lite = Gallery.open(tmp_path / "g", create=True, dim=DIM, metadata=TOY_META, backend="numpy")
    for gallery in (pg, lite):
        _exercise(gallery)
    assert pg.names == lite.names == ["alice", "robert", "dave"]
    assert pg.metadata == lite.metadata == TOY_META
    strip = (lambda infos: [(i.name, i.embeddings, i.photos) for i in infos])
    assert strip(pg.identities()) == strip(lite.identities()) == [("alice", 3, 3), ("robert", 2, 0), ("dave", 2, 0)]
    assert pg.identity("alice").sources == lite.identity("alice").sources == ("a1.jpg", "a2.jpg", "a3.jpg")
    queries = unit_rows(4, DIM, 9)
    assert pg.search(queries, 2) == lite.search(queries, 2)
    reopened = Gallery.open(_url(pg_database), backend="numpy")  # read back from the database
    assert _ranked(reopened.search(queries, 3)) == _ranked(lite.search(queries, 3))
    np.testing.assert_array_equal(reopened.embeddings_of("dave"), Gallery.open(tmp_path / "g").embeddings_of("dave"))
    a, b = np.load(pg.export(tmp_path / "pg.npz")), np.load(lite.export(tmp_path / "lite.npz"))
    for key in ("embeddings", "names", "sources", "identities"):
        np.testing.assert_array_equal(a[key], b[key])
    assert json.loads(str(a["metadata"])) == json.loads(str(b["metadata"]))
    with pytest.raises(UnknownNameError):
        pg.remove("nobody")
    with pytest.raises(InvalidInputError, match="already"):
        pg.rename("alice", "dave")
    with pytest.raises(GalleryMismatchError):
        Gallery.open(_url(pg_database), dim=DIM, metadata={**TOY_META, "model": "other"})
    pg.update_metadata(threshold=0.4)
    assert Gallery.open(_url(pg_database)).metadata["threshold"] == 0.4
    for g in (pg, lite, reopened):
        g.close()


def test_missing_gallery_read_only_and_newer_schema(pg_database, pg_server):
    with pytest.raises(GalleryNotFoundError, match="no gallery 'nope'"):
        Gallery.open(_url(pg_database, "nope"))
    pending = Gallery.open(_url(pg_database), create=True, dim=DIM)  # made by its first enrolment only
    assert GallerySet(pg_database, dim=DIM, metadata={}).names() == []
    pending.enroll_embeddings("a", unit_rows(1, DIM, 0))
    readonly = Gallery.open(_url(pg_database), readonly=True)
    assert readonly.names == ["a"]
    database = pg_database.rsplit("/", 1)[1]
    by_socket = f"postgres://facelivt@/{database}?host={pg_server.sockets}&port={pg_server.port}&gallery=g"
    assert Gallery.open(by_socket).names == ["a"]  # a Unix socket, as libpq takes it
    with pytest.raises(GalleryWriteError, match="read-only"):
        readonly.enroll_embeddings("b", unit_rows(1, DIM, 1))
    pg_server.execute("UPDATE facelivt_schema SET version = 99", database=database)
    with pytest.raises(GalleryError, match="newer facelivt"):
        Gallery.open(_url(pg_database))
    pending.close()
    readonly.close()


def test_gallery_set_lists_opens_and_creates_galleries_in_a_database(pg_database):
    galleries = GallerySet(pg_database, dim=DIM, metadata=TOY_META)
    assert galleries.kind == "postgresql" and galleries.names() == []
    with pytest.raises(GalleryNotFoundError):
        galleries.open("staff")
    with pytest.raises(InvalidInputError, match="invalid gallery name"):
        galleries.open("../etc")
    for name, seed in (("staff", 0), ("visitors", 1)):
        galleries.open(name, create=True).enroll_embeddings("p", unit_rows(1, DIM, seed))
    assert galleries.names() == ["staff", "visitors"] and galleries.exists("staff") and not galleries.exists("x")
    assert galleries.open("staff") is galleries.open("staff")
    assert Gallery.open(_url(pg_database, "visitors")).names == ["p"]
    galleries.close()
    with pytest.raises(InvalidInputError, match="leave out gallery="):
        GallerySet(_url(pg_database), dim=DIM, metadata={})


def test_check_finds_and_repairs_unusable_rows(pg_database, pg_server):
    g = Gallery.open(_url(pg_database), create=True, dim=DIM)
    g.enroll_embeddings("ok", unit_rows(2, DIM, 0))
    g.enroll_embeddings("broken", unit_rows(1, DIM, 1))
    pg_server.execute("UPDATE facelivt_embeddings SET vector = '\\x00' WHERE identity_id = "
                      "(SELECT id FROM facelivt_identities WHERE name = 'broken')",
                      database=pg_database.rsplit("/", 1)[1])
    with pytest.raises(GalleryError, match="--repair"):
        Gallery.open(_url(pg_database))
    found = check_pg_gallery(_url(pg_database))
    assert [p.kind for p in found.problems] == ["unusable embeddings", "empty identities"]
    fixed = check_pg_gallery(_url(pg_database), repair=True)
    assert fixed.problems == [] and len(fixed.repaired) == 2 and (fixed.identities, fixed.embeddings) == (1, 2)
    assert Gallery.open(_url(pg_database)).names == ["ok"]
    g.close()


#: A child that opens the gallery, says so, then reports the names it sees each time a line arrives.
WATCH = r"""
import sys
from facelivt.inference import Gallery
g = Gallery.open(sys.argv[1])
print(",".join(g.names), g._store.changed(), flush=True)
for line in sys.stdin:
    if line.strip() == "changed":
        print(g._store.changed(), flush=True)
    else:
        print(",".join(g.names), flush=True)
"""


def test_a_second_process_sees_enrolments_through_notify(pg_database):
    g = Gallery.open(_url(pg_database), create=True, dim=DIM, metadata=TOY_META)
    g.enroll_embeddings("first", unit_rows(1, DIM, 0))
    child = start_python(WATCH, _url(pg_database))
    try:
        assert child.stdout.readline().split() == ["first", "False"]  # nothing happened since it read
        child.stdin.write("changed\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "False"
        g.enroll_embeddings("second", unit_rows(1, DIM, 1))
        g.rename("first", "one")

        def names():
            child.stdin.write("names\n")
            child.stdin.flush()
            return child.stdout.readline().strip() == "one,second"

        wait_for(names, "the child to see the enrolment and the rename")
        assert g.names == ["one", "second"]  # its own writes did not make it reload (nor lose anything)
    finally:
        child.kill()
        child.wait()
        g.close()


#: A child that enrols, from the moment a line arrives: into "shared", its own identity, and one photo
#: every child enrols to "dup" (the same content: kept once).
ENROLL = r"""
import sys
import numpy as np
from facelivt.inference import Gallery
url, seed, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(seed)
sys.stdin.readline()
g = Gallery.open(url, create=True, dim=8, metadata={"model": "toy"})
for i in range(rounds):
    g.enroll_embeddings("shared", rng.standard_normal((2, 8)))
    g.enroll_embeddings(f"own{seed}", rng.standard_normal((1, 8)))
    g.enroll_embeddings("dup", rng.standard_normal((1, 8)), sources=["same.jpg"], hashes=["abc"])
print(g.num_embeddings, flush=True)
"""


def test_concurrent_processes_lose_and_duplicate_nothing(pg_database):
    procs, rounds = 4, 5
    url = _url(pg_database)  # a new database: the processes also make the tables and the gallery at once
    children = [start_python(ENROLL, url, seed, rounds) for seed in range(procs)]
    for child in children:
        child.stdin.write("go\n")
        child.stdin.flush()
    for child in children:
        out, err = child.communicate(timeout=300)
        assert child.returncode == 0, err
    g = Gallery.open(url)
    counts = {i.name: i.embeddings for i in g.identities()}
    assert counts == {"shared": 2 * procs * rounds, "dup": 1, **{f"own{s}": rounds for s in range(procs)}}
    assert g.num_embeddings == sum(counts.values())
    g.close()


#: A child that enrols "victim" (its transaction waits on the gallery row the test holds).
VICTIM = r"""
import sys
import numpy as np
from facelivt.inference import Gallery
g = Gallery.open(sys.argv[1])
print("enrolling", flush=True)
g.enroll_embeddings("victim", np.ones((3, 8)))
print("committed", flush=True)
"""


def test_a_process_killed_inside_its_enrolment_leaves_nothing(pg_database):
    url = _url(pg_database)
    g = Gallery.open(url, create=True, dim=DIM)
    g.enroll_embeddings("before", unit_rows(2, DIM, 0))
    with psycopg.connect(pg_database, autocommit=True) as holder:
        holder.execute("BEGIN")
        holder.execute("SELECT id FROM facelivt_galleries WHERE name = 'g' FOR NO KEY UPDATE")  # as a writer's UPDATE
        child = start_python(VICTIM, url)
        assert child.stdout.readline().strip() == "enrolling"
        waiting = "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        backend = wait_for(lambda: holder.execute(waiting).fetchone(), "the child's transaction to wait")[0]
        # its identity and embeddings are inserted (uncommitted: nobody sees them), the version update waits
        rows = holder.execute("SELECT count(*) FROM pg_locks WHERE pid = %s AND relation = "
                              "'facelivt_embeddings'::regclass AND mode = 'RowExclusiveLock'", (backend,)).fetchone()
        assert rows[0] == 1
        assert Gallery.open(url).names == ["before"]
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        holder.execute("ROLLBACK")
        gone = "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = %s"
        wait_for(lambda: holder.execute(gone, (backend,)).fetchone()[0], "the killed child's session to end")
    after = Gallery.open(url)
    assert after.names == ["before"] and after.num_embeddings == 2
    after.enroll_embeddings("later", unit_rows(1, DIM, 1))  # nothing left locked
    assert Gallery.open(url).names == ["before", "later"]
    g.close()
    after.close()


def test_server_gone_then_back_without_reopening(pg_server, pg_database):
    url = pg_database.replace("facelivt@", "facelivt:s3cret@") + "?gallery=g"  # trust: the password is unused
    g = Gallery.open(url, create=True, dim=DIM)
    g.enroll_embeddings("a", unit_rows(1, DIM, 0))
    query = unit_rows(1, DIM, 0)
    pg_server.stop()
    try:
        for call in (lambda: g.search(query), lambda: g.enroll_embeddings("b", unit_rows(1, DIM, 1)),
                     lambda: Gallery.open(url), g.identities):
            with pytest.raises(GalleryUnavailableError) as info:
                call()
            assert "gallery database" in str(info.value) and "s3cret" not in str(info.value)
            assert isinstance(info.value, GalleryError)
    finally:
        pg_server.start()
    assert g.search(query)[0][0].name == "a"  # the same object connects again by itself
    g.enroll_embeddings("b", unit_rows(1, DIM, 1))
    pg_server.restart()  # the server restarts between two calls: the next call does not fail
    assert g.names == ["a", "b"] and Gallery.open(url).names == ["a", "b"]
    g.close()


def test_a_name_postgresql_cannot_store_is_a_clear_error(pg_database):
    g = Gallery.open(_url(pg_database), create=True, dim=DIM)
    g.enroll_embeddings("a", unit_rows(1, DIM, 0))
    with pytest.raises(InvalidInputError, match="NUL"):
        g.enroll_embeddings("a\x00b", unit_rows(1, DIM, 1))
    assert g.names == ["a"] and Gallery.open(_url(pg_database)).num_embeddings == 1
    g.close()
