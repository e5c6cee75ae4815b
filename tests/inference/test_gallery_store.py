"""The gallery database: enrolments from several processes all survive, readers run while a writer
writes, a killed or disk-full enrolment changes nothing, damaged / foreign / newer files and bad
thresholds are refused with a message naming the file."""
from __future__ import annotations

import errno
import multiprocessing as mp
import os
import signal
import sqlite3
import threading
import time

import numpy as np
import pytest
from disk_helpers import fill, listing, tmpfs
from gallery_helpers import HOLD_WRITE_LOCK, KEEP_OPEN, TOY_META, read_only, start_python, unit_rows

from facelivt.errors import FaceLiVTError, OutputWriteError
from facelivt.inference import (
    Gallery,
    GalleryError,
    GalleryExistsError,
    GalleryMismatchError,
    GalleryNotFoundError,
    GalleryWriteError,
    InvalidThresholdError,
    check_gallery,
)
from facelivt.inference.gallery_store import APPLICATION_ID, SCHEMA_VERSION

DIM = 16
FORK = mp.get_context("fork")  # the children reuse this process's imports: starting them costs nothing


def _row(worker: int, i: int) -> np.ndarray:
    return unit_rows(1, DIM, seed=10_000 * worker + i)[0]


def _enroll_loop(folder, worker: int, count: int, per: int = 1) -> None:
    """As separate `facelivt enroll` runs do: open (creating if needed), enrol one identity, close."""
    for i in range(count):
        with Gallery.open(folder, create=True, dim=DIM, metadata=TOY_META) as g:
            g.enroll_embeddings(f"w{worker}-{i}", np.repeat(_row(worker, i)[None], per, 0),
                                sources=[f"w{worker}/{i}.jpg"] * per)


def _search_loop(folder, seconds: float, out) -> None:
    seen, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            g = Gallery.open(folder)
        except GalleryNotFoundError:  # not created yet
            time.sleep(0.01)
            continue
        with g:
            n = len(g)
            if n:  # others may commit between len() and search(): identities only come
                assert min(3, n) <= len(g.search(np.ones(DIM), 3)[0]) <= 3
        seen.append(n)
    out.put(seen)


def _run(procs):
    for p in procs:
        p.start()
    for p in procs:
        p.join(180)
    return [p.exitcode for p in procs]


def test_enrolments_from_several_processes_all_survive(tmp_path):
    """Before: two processes enrolling into one gallery kept 162 of 301 enrolments."""
    folder, workers, count = tmp_path / "g", 3, 40
    out = FORK.Queue()
    procs = [FORK.Process(target=_enroll_loop, args=(folder, w, count)) for w in range(workers)]
    procs.append(FORK.Process(target=_search_loop, args=(folder, 3.0, out)))
    assert _run(procs) == [0] * (workers + 1)
    seen = out.get(timeout=5)
    assert seen and seen == sorted(seen)  # a reader never sees a committed enrolment disappear
    with Gallery.open(folder) as g:
        assert sorted(g.names) == sorted(f"w{w}-{i}" for w in range(workers) for i in range(count))
        assert g.num_embeddings == workers * count
        for w in range(workers):
            for i in (0, count - 1):
                assert np.allclose(g.embeddings_of(f"w{w}-{i}")[0], _row(w, i), atol=1e-6)


def test_killed_enrolment_leaves_no_half(tmp_path):
    """An enrolment of 8 embeddings is all there or not at all, whenever the process is killed."""
    folder = tmp_path / "g"
    proc = FORK.Process(target=_enroll_loop, args=(folder, 0, 10_000, 8))
    proc.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (folder / "gallery.sqlite").exists():
        time.sleep(0.05)
    time.sleep(1.0)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(30)
    with Gallery.open(folder) as g:
        assert len(g) > 0
        counts = {name: len(g.embeddings_of(name)) for name in g.names}
        assert set(counts.values()) == {8}, counts
        g.enroll_embeddings("after", np.ones(DIM))  # and it takes the next enrolment
        assert "after" in g


def test_readers_run_while_a_writer_writes(tmp_path):
    folder = tmp_path / "g"
    with Gallery.open(folder, create=True, dim=DIM, metadata=TOY_META) as g:
        g.enroll_embeddings("first", _row(0, 0))
    holder = start_python(HOLD_WRITE_LOCK, folder / "gallery.sqlite", DIM)
    try:
        assert holder.stdout.readline().strip() == "locked"
        t0 = time.monotonic()
        with Gallery.open(folder) as g:  # identify while enroll writes: the reader does not wait
            assert g.search(_row(0, 0), 5)[0][0].name == "first" and g.names == ["first"]
            assert time.monotonic() - t0 < 10
            late = threading.Thread(target=g.enroll_embeddings, args=("late", _row(0, 1)))
            late.start()  # a second writer waits for the first instead of failing
            time.sleep(1.0)
            assert late.is_alive()
            holder.stdin.write("go\n")
            holder.stdin.flush()
            late.join(30)
            assert not late.is_alive()
            assert holder.stdout.readline().strip() == "committed"
            assert g.names == ["first", "held", "late"]  # the index follows the other process's commit
    finally:
        holder.kill()
        holder.wait()


def test_the_schema(tmp_path):
    folder = tmp_path / "g"
    with Gallery.open(folder, create=True, dim=DIM, metadata=TOY_META) as g:
        g.enroll_embeddings("a", unit_rows(2, DIM, 0), sources=["a1.jpg", "a2.jpg"])
        con = sqlite3.connect(folder / "gallery.sqlite")
        assert con.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 1
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        meta = dict(con.execute("SELECT key, value FROM meta"))
        assert meta["dim"] == str(DIM) and meta["weights_fingerprint"] == '"f00d"' and meta["model"] == '"toy"'
        rows = con.execute("SELECT i.name, length(e.vector), e.source FROM embeddings e "
                           "JOIN identities i ON i.id = e.identity_id ORDER BY e.id").fetchall()
        assert rows == [("a", 4 * DIM, "a1.jpg"), ("a", 4 * DIM, "a2.jpg")]
        with pytest.raises(sqlite3.IntegrityError):  # names are text, by construction
            con.execute("INSERT INTO identities(name, added) VALUES (x'3f800000', 'now')")
        con.execute("INSERT INTO identities(name, added) VALUES (1.5, 'now')")  # stored as the text '1.5'
        assert con.execute("SELECT typeof(name) FROM identities WHERE name = '1.5'").fetchone() == ("text",)
        con.close()


def assert_unchanged(folder, data: bytes) -> None:
    """The database file holds ``data``; besides it at most SQLite's empty log and the log's index
    (which SQLite rebuilds), left where opening failed half-way."""
    files = listing(folder)
    assert files["gallery.sqlite"] == data
    assert set(files) - {"gallery.sqlite"} <= {"gallery.sqlite-wal", "gallery.sqlite-shm"}
    assert files.get("gallery.sqlite-wal", b"") == b""


def _damaged(tmp_path):
    good = tmp_path / "good"
    with Gallery.open(good, create=True, dim=512, metadata=TOY_META) as g:
        for i in range(40):
            g.enroll_embeddings(f"id{i}", unit_rows(3, 512, i))
    data = (good / "gallery.sqlite").read_bytes()
    foreign = tmp_path / "foreign.sqlite"
    con = sqlite3.connect(foreign)
    con.execute("CREATE TABLE notes (x)")
    con.commit()
    con.close()
    newer = tmp_path / "newer.sqlite"
    newer.write_bytes(data)
    con = sqlite3.connect(newer)
    con.execute("PRAGMA user_version = 2")
    con.close()
    return {
        "random bytes": (os.urandom(8192), "damaged or not a facelivt gallery"),
        "truncated": (data[: len(data) // 2], "damaged or not a facelivt gallery"),
        "foreign": (foreign.read_bytes(), "an SQLite database but not a facelivt gallery"),
        "newer": (newer.read_bytes(), "newer facelivt .*schema 2"),
    }


def test_damaged_foreign_and_newer_files_are_refused(tmp_path):
    for case, (data, match) in _damaged(tmp_path).items():
        folder = tmp_path / case.replace(" ", "_")
        folder.mkdir()
        (folder / "gallery.sqlite").write_bytes(data)
        for kwargs in ({}, {"create": True, "dim": 512}):  # identify, and enroll
            with pytest.raises(GalleryError, match=match) as info:
                Gallery.open(folder, **kwargs)
            assert str(folder / "gallery.sqlite") in str(info.value), case
        assert_unchanged(folder, data)


def test_embeddings_of_another_model_or_size_are_refused(tmp_path):
    folder = tmp_path / "g"
    with Gallery.open(folder, create=True, dim=DIM, metadata=TOY_META) as g:
        g.enroll_embeddings("a", _row(0, 0))
        with pytest.raises(ValueError, match=f"dimension {DIM}"):
            g.enroll_embeddings("b", np.ones(DIM + 1))
    with pytest.raises(GalleryMismatchError, match="holds 16-d embeddings, the model gives 32-d"):
        Gallery.open(folder, create=True, dim=32, metadata=TOY_META)
    with pytest.raises(GalleryMismatchError, match="weights_fingerprint='f00d'.*not comparable"):
        Gallery.open(folder, dim=DIM, metadata=dict(TOY_META, weights_fingerprint="beef"))
    with Gallery.open(folder) as g:
        assert g.names == ["a"]


def test_thresholds_are_validated_where_they_are_set(tmp_path):
    folder = tmp_path / "g"
    for bad in (float("nan"), float("inf"), -1, -1.5, 1.01, "0.5", True):
        with pytest.raises(InvalidThresholdError, match="threshold"):
            Gallery(DIM, metadata={"threshold": bad})
    with Gallery.open(folder, create=True, dim=DIM, metadata=dict(TOY_META, threshold=0.25)) as g:
        g.enroll_embeddings("a", _row(0, 0))
        for bad in (float("nan"), -1, 2):
            with pytest.raises(InvalidThresholdError):
                g.update_metadata(threshold=bad)
        g.update_metadata(threshold=None)  # removed: the recognizer's default applies
        assert "threshold" not in g.metadata
        g.update_metadata(threshold=1.0)
        assert g.metadata["threshold"] == 1.0
    with Gallery.open(folder) as g:
        assert g.metadata["threshold"] == 1.0
    for text, match in (("-1", "threshold must be a finite"), ("NaN", "not valid JSON")):  # edited by hand
        con = sqlite3.connect(folder / "gallery.sqlite")
        con.execute("UPDATE meta SET value = ? WHERE key = 'threshold'", (text,))
        con.commit()
        con.close()
        with pytest.raises(FaceLiVTError, match=match) as info:
            Gallery.open(folder)
        assert "gallery.sqlite" in str(info.value)


def test_save_does_not_replace_another_gallery(tmp_path):
    folder = tmp_path / "g"
    with Gallery.open(folder, create=True, dim=DIM) as g:
        g.enroll_embeddings("kept", _row(0, 0))
    other = Gallery(DIM)
    other.enroll_embeddings("other", _row(0, 1))
    with pytest.raises(GalleryExistsError, match="already holds a gallery"):
        other.save(folder)
    with Gallery.open(folder) as g:
        assert g.names == ["kept"]
    other.save(folder, overwrite=True)
    with Gallery.open(folder) as g:
        assert g.names == ["other"]
    other.close()


@pytest.mark.parametrize("leave", [0, 40_000])
def test_enrolment_on_a_full_disk_changes_nothing(leave):
    """0 bytes left: not even the log's index fits; 40 kB: the enrolment (80 kB) does not fit."""
    with tmpfs("1m") as mnt:
        folder = mnt / "g"
        with Gallery.open(folder, create=True, dim=512, metadata=TOY_META) as g:
            for i in range(5):
                g.enroll_embeddings(f"id{i}", unit_rows(2, 512, i))
        before = listing(folder)
        fill(mnt, leave)
        with pytest.raises(GalleryWriteError, match="gallery.sqlite: .*(full|no room)") as info:
            with Gallery.open(folder) as g:
                g.enroll_embeddings("big", unit_rows(40, 512, 9))
        assert isinstance(info.value, OSError) and "the gallery was not changed" in str(info.value)
        (mnt / ".filler").unlink()
        assert_unchanged(folder, before["gallery.sqlite"])
        with Gallery.open(folder) as g:
            assert g.names == [f"id{i}" for i in range(5)] and g.num_embeddings == 10


def _three(folder):
    """A gallery of identities a, b, c (2, 3 and 1 embeddings)."""
    with Gallery.open(folder, create=True, dim=DIM, metadata=TOY_META) as g:
        for i, (name, n) in enumerate((("a", 2), ("b", 3), ("c", 1))):
            g.enroll_embeddings(name, unit_rows(n, DIM, i))


def _sql(folder, *statements, foreign_keys: bool = False):
    """Edit the database as the sqlite3 tool does (foreign keys off unless asked)."""
    con = sqlite3.connect(folder / "gallery.sqlite")
    con.execute(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}")
    for statement in statements:
        con.execute(*statement) if isinstance(statement, tuple) else con.execute(statement)
    con.commit()
    con.close()


def test_an_identity_deleted_by_another_tool_is_named_and_repaired(tmp_path):
    """Before: deleting an identity with the sqlite3 tool (foreign keys off) left its embeddings, and
    every later open (identify, enroll) died with KeyError in snapshot."""
    folder = tmp_path / "g"
    _three(folder)
    _sql(folder, "DELETE FROM identities WHERE name = 'b'")
    for kwargs in ({}, {"create": True, "dim": DIM, "metadata": TOY_META}):  # identify, and enroll
        with pytest.raises(GalleryError, match=r"inconsistent: 3 embeddings belong to no identity \(identity id 2 .*"
                                               r"`facelivt gallery check .*g --repair`"):
            Gallery.open(folder, **kwargs)
    found = check_gallery(folder)
    assert [(p.kind, p.count) for p in found.problems] == [("orphaned embeddings", 3)] and found.repaired == []
    assert (found.identities, found.embeddings) == (2, 6)
    fixed = check_gallery(folder, repair=True)
    assert [(p.kind, p.count) for p in fixed.repaired] == [("orphaned embeddings", 3)] and fixed.problems == []
    assert (fixed.identities, fixed.embeddings) == (2, 3)
    with Gallery.open(folder) as g:
        assert g.names == ["a", "c"] and g.num_embeddings == 3
        assert np.allclose(g.embeddings_of("c"), unit_rows(1, DIM, 2), atol=1e-6)
    assert check_gallery(folder).problems == []


def test_the_schema_deletes_an_identitys_embeddings_with_it(tmp_path):
    """With foreign keys on (facelivt's connections; the sqlite3 tool when asked), no row is left behind."""
    folder = tmp_path / "g"
    _three(folder)
    _sql(folder, "DELETE FROM identities WHERE name = 'b'", foreign_keys=True)
    with Gallery.open(folder) as g:
        assert g.names == ["a", "c"] and g.num_embeddings == 3
        g.remove("a")
    con = sqlite3.connect(folder / "gallery.sqlite")
    assert con.execute("SELECT count(*) FROM embeddings").fetchone()[0] == 1
    con.close()
    assert check_gallery(folder).problems == []


def test_check_finds_and_repair_removes_every_inconsistent_row(tmp_path):
    folder = tmp_path / "g"
    _three(folder)
    nan = np.full(DIM, np.nan, "<f4").tobytes()
    _sql(folder, "DELETE FROM identities WHERE name = 'a'",  # 2 orphans
         "INSERT INTO identities(name, added) VALUES ('ghost', 'now')",  # no embedding
         ("INSERT INTO embeddings(identity_id, vector, source, added) VALUES (3, ?, NULL, 'now')", (nan,)),
         ("INSERT INTO embeddings(identity_id, vector, source, added) VALUES (3, ?, NULL, 'now')", (b"\0" * 8,)))
    with pytest.raises(GalleryError, match="remove them with `facelivt gallery check"):
        Gallery.open(folder)
    found = check_gallery(folder)
    assert {p.kind: p.count for p in found.problems} == {"orphaned embeddings": 2, "unusable embeddings": 2,
                                                          "empty identities": 1}
    assert "ghost" in str(found.problems[-1])
    fixed = check_gallery(folder, repair=True)
    assert {p.kind: p.count for p in fixed.repaired} == {"orphaned embeddings": 2, "unusable embeddings": 2,
                                                          "empty identities": 1}
    assert fixed.problems == [] and (fixed.identities, fixed.embeddings) == (2, 4)
    with Gallery.open(folder) as g:
        assert g.names == ["b", "c"] and g.num_embeddings == 4


def test_check_refuses_what_is_not_a_gallery(tmp_path):
    with pytest.raises(GalleryNotFoundError, match="no gallery in"):
        check_gallery(tmp_path)
    for case, (data, match) in _damaged(tmp_path).items():
        folder = tmp_path / case.replace(" ", "_")
        folder.mkdir()
        (folder / "gallery.sqlite").write_bytes(data)
        for repair in (False, True):
            with pytest.raises(GalleryError, match=match):
                check_gallery(folder, repair=repair)
        assert_unchanged(folder, data)


def _enroll_one(folder) -> None:
    with Gallery.open(folder) as g:
        g.enroll_embeddings("new", _row(0, 0))


@pytest.mark.parametrize("log", ["folded in", "still open"])
def test_a_gallery_in_a_read_only_folder_is_searched(tmp_path, log):
    """Before: with the write-ahead log folded in (no ``-wal`` file), opening it failed with "unable to
    open database file" (SQLite wanted to create the log). With a log still open, its commits must be
    read (opening it ``immutable`` would skip them)."""
    folder = tmp_path / "g"
    _three(folder)
    with Gallery.open(folder, readonly=True) as g:  # read-only in a folder that can be written, too
        with pytest.raises(GalleryWriteError, match="gallery.sqlite: .*read.?only"):
            g.enroll_embeddings("new", _row(0, 0))
    assert sorted(p.name for p in folder.iterdir()) == ["gallery.sqlite"]  # nothing left beside it
    holder = start_python(KEEP_OPEN, folder / "gallery.sqlite", DIM) if log == "still open" else None
    try:
        if holder is not None:  # its commit is only in the log: a reader must see it
            assert holder.stdout.readline().strip() == "committed"
            assert (folder / "gallery.sqlite-wal").stat().st_size > 0
        with read_only(folder) as view:
            before = listing(view)
            with Gallery.open(view, readonly=True) as g:
                assert g.names == ["a", "b", "c"] + (["held"] if holder else [])
                assert g.search(unit_rows(1, DIM, 2)[0], 1)[0][0].name == "c"
                with pytest.raises(GalleryWriteError, match="gallery.sqlite: .*read.?only"):
                    g.enroll_embeddings("new", _row(0, 0))
            found = check_gallery(view)
            assert found.problems == [] and found.identities == 3 + bool(holder)
            with pytest.raises(GalleryWriteError, match="cannot write .*gallery.sqlite"):  # opened to write
                _enroll_one(view)
            assert listing(view) == before
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()


@pytest.mark.parametrize("leave", [0, 40_000, 150_000])
def test_a_new_gallery_that_does_not_fit_leaves_nothing(leave):
    """Before: `enroll` into a new gallery on a full disk said "the gallery was not changed" but left a new
    empty gallery (database + 155 kB log) on the full disk. 0 bytes left: nothing fits; 40 kB: the
    schema does; 150 kB: the schema and some embeddings do, not the 200 (400 kB)."""
    with tmpfs("1m") as mnt:
        (mnt / "kept").mkdir()
        (mnt / "kept" / "notes.txt").write_text("mine")
        fill(mnt, leave)
        for folder in (mnt / "new" / "g", mnt / "kept"):  # folders it makes go, folders that were there stay
            with pytest.raises(OutputWriteError, match=r"cannot write .*(full|No space)") as info:
                with Gallery.open(folder, create=True, dim=512, metadata=TOY_META) as g:
                    g.enroll_embeddings("big", unit_rows(200, 512, 0))
            assert not isinstance(info.value, GalleryWriteError) or "no gallery was created" in str(info.value)
        (mnt / ".filler").unlink()
        assert listing(mnt) == {"kept/notes.txt": b"mine"} and sorted(p.name for p in mnt.iterdir()) == ["kept"]
        with Gallery.open(mnt / "new" / "g", create=True, dim=512, metadata=TOY_META) as g:  # room now
            g.enroll_embeddings("big", unit_rows(200, 512, 0))
        with Gallery.open(mnt / "new" / "g") as g:
            assert g.names == ["big"] and g.num_embeddings == 200


def test_a_new_gallery_is_made_by_its_first_enrolment(tmp_path):
    folder = tmp_path / "new" / "g"
    first = Gallery.open(folder, create=True, dim=DIM, metadata=TOY_META)
    assert first.path == folder and len(first) == 0 and not (tmp_path / "new").exists()
    with pytest.raises(GalleryNotFoundError):
        Gallery.open(folder)
    with Gallery.open(folder, create=True, dim=DIM, metadata=TOY_META) as second:  # another process, say
        second.enroll_embeddings("x", _row(0, 0))
        assert first.names == ["x"]  # the first uses the gallery made meanwhile
        first.enroll_embeddings("y", _row(0, 1))
        assert second.names == ["x", "y"]
    first.close()
    other = Gallery.open(tmp_path / "h", create=True, dim=DIM, metadata=dict(TOY_META, weights_fingerprint="beef"))
    with Gallery.open(tmp_path / "h", create=True, dim=DIM, metadata=TOY_META) as g:
        g.enroll_embeddings("x", _row(0, 0))
    with pytest.raises(GalleryMismatchError, match="weights_fingerprint"):
        other.enroll_embeddings("z", _row(0, 2))
    with Gallery.open(tmp_path / "h") as g:
        assert g.names == ["x"]


def test_a_file_system_without_hard_links_makes_the_gallery_in_place(tmp_path, monkeypatch):
    """A new gallery is linked into place; where links fail as on FAT, it is made in place instead."""
    def no_links(src, dst, *args, **kwargs):
        raise PermissionError(errno.EPERM, "Operation not permitted", str(src), None, str(dst))

    monkeypatch.setattr(os, "link", no_links)
    with Gallery.open(tmp_path / "g", create=True, dim=DIM, metadata=TOY_META) as g:
        g.enroll_embeddings("x", _row(0, 0))
    monkeypatch.undo()
    assert sorted(p.name for p in (tmp_path / "g").iterdir()) == ["gallery.sqlite"]  # no temporary left
    with Gallery.open(tmp_path / "g") as g:
        assert g.names == ["x"] and g.metadata["model"] == "toy"


def test_photos_an_identity_has_are_skipped(tmp_path):
    """Before: enrolling the same photos again added them again (an enrolment run twice: 2 x 30 embeddings)."""
    folder, rows, digests = tmp_path / "g", unit_rows(3, DIM, 0), ["1" * 64, "2" * 64, "3" * 64]
    with Gallery.open(folder, create=True, dim=DIM, metadata=TOY_META) as g:
        assert g.enroll_embeddings("a", rows[:2], sources=["a1.jpg", "a2.jpg"], hashes=digests[:2]) == 2
        assert g.enrolled("a", digests + ["4" * 64]) == [True, True, False, False]
        assert g.enrolled("b", digests) == [False] * 3  # another identity's photos are its own
        with Gallery.open(folder) as other:  # another process, between this one's look and its write
            assert other.enroll_embeddings("a", rows[2:], hashes=digests[2:]) == 1
        assert g.enroll_embeddings("a", rows, sources=["x.jpg"] * 3, hashes=digests) == 0
        assert g.enroll_embeddings("b", rows[:1], hashes=digests[:1]) == 1
        assert g.num_embeddings == 4 and len(g.embeddings_of("a")) == 3
    con = sqlite3.connect(folder / "gallery.sqlite")
    assert con.execute("SELECT source, sha256 FROM embeddings ORDER BY id").fetchall() == [
        ("a1.jpg", digests[0]), ("a2.jpg", digests[1]), (None, digests[2]), (None, digests[0])]
    con.close()


def test_a_gallery_made_before_photo_hashes_gets_them(tmp_path):
    """Embeddings recorded without a hash are known by their photo's path; the column comes with the
    first enrolment that records one, and the gallery stays schema 1 (older versions use it as before)."""
    folder = tmp_path / "g"
    with Gallery.open(folder, create=True, dim=DIM, metadata=TOY_META) as g:
        g.enroll_embeddings("a", unit_rows(2, DIM, 0), sources=["p/a1.jpg", "p/a2.jpg"])
    _sql(folder, "ALTER TABLE embeddings DROP COLUMN sha256")  # the table as galleries had it before
    with Gallery.open(folder) as g:
        assert g.enrolled("a", [None, "1" * 64, "2" * 64], ["p/a1.jpg", "p/a2.jpg", "p/a3.jpg"]) == [True, True, False]
        assert g.enroll_embeddings("a", unit_rows(2, DIM, 1), sources=["p/a2.jpg", "p/a3.jpg"],
                                   hashes=["2" * 64, "3" * 64]) == 1
        assert g.enrolled("a", ["3" * 64], ["elsewhere/a3.jpg"]) == [True]  # moved, same content
        assert g.num_embeddings == 3
    con = sqlite3.connect(folder / "gallery.sqlite")
    assert con.execute("SELECT sha256 FROM embeddings ORDER BY id").fetchall() == [(None,), (None,), ("3" * 64,)]
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    con.close()
