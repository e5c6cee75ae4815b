"""Looking after a gallery through the library: list and show identities, rename, remove for good (the
removed embeddings' bytes are gone from the database and its write-ahead log), export to .npz; in memory
and backed by a folder; unknown names, taken names and read-only galleries refused."""
from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest
from gallery_helpers import KEEP_OPEN, TOY_META, read_only, start_python, unit_rows

from facelivt.errors import InvalidInputError, UnknownNameError
from facelivt.inference import Gallery, GalleryWriteError

DIM = 16


@pytest.fixture
def folder(tmp_path):
    """A gallery folder: a (3 photos), b (2), c (1 embedding without a photo)."""
    g = Gallery.open(tmp_path / "g", create=True, dim=DIM, metadata=TOY_META)
    g.enroll_embeddings("a", unit_rows(3, DIM, 1), sources=["a1.jpg", "a2.jpg", "a3.jpg"], hashes=["1", "2", "3"])
    g.enroll_embeddings("b", unit_rows(2, DIM, 2), sources=["b1.jpg", "b2.jpg"], hashes=["4", "5"])
    g.enroll_embeddings("c", unit_rows(1, DIM, 3))
    g.close()
    return tmp_path / "g"


def test_identities_and_identity(folder):
    with Gallery.open(folder, readonly=True) as g:
        people = g.identities()
        a = g.identity("a")
    assert [(p.name, p.embeddings, p.photos) for p in people] == [("a", 3, 3), ("b", 2, 2), ("c", 1, 0)]
    assert all(p.added and p.updated for p in people)
    assert a.sources == ("a1.jpg", "a2.jpg", "a3.jpg") and a.embeddings == 3


def test_in_memory_gallery_has_the_same_operations(tmp_path):
    g = Gallery(DIM, backend="numpy")
    g.enroll_embeddings("a", unit_rows(2, DIM, 1))
    g.enroll_embeddings("b", unit_rows(1, DIM, 2))
    assert [(p.name, p.embeddings) for p in g.identities()] == [("a", 2), ("b", 1)]
    g.rename("a", "z")
    assert g.names == ["z", "b"] and g.identity("z").embeddings == 2
    assert g.search(g.template("z"), k=1)[0][0].name == "z"
    with pytest.raises(InvalidInputError, match="identity 'b' is in the gallery already"):
        g.rename("z", "b")
    g.export(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as z:
        assert list(z["names"]) == ["z", "z", "b"] and z["embeddings"].shape == (3, DIM)


def test_rename(folder):
    with Gallery.open(folder) as g:
        template = g.template("a")
        g.rename("a", "alice")
        assert g.names == ["alice", "b", "c"]
        np.testing.assert_array_equal(g.template("alice"), template)
        assert g.search(template, k=1)[0][0].name == "alice"
    with Gallery.open(folder) as g:  # written to the folder
        assert g.names == ["alice", "b", "c"] and g.identity("alice").sources == ("a1.jpg", "a2.jpg", "a3.jpg")


@pytest.mark.parametrize("old,new,error,message", [
    ("nobody", "x", UnknownNameError, "identity 'nobody' is not in the gallery"),
    ("a", "b", InvalidInputError, "identity 'b' is in the gallery already"),
    ("a", " ", InvalidInputError, "non-empty string"),
])
def test_rename_refuses(folder, old, new, error, message):
    with Gallery.open(folder) as g:
        with pytest.raises(error, match=message):
            g.rename(old, new)
    with Gallery.open(folder) as g:
        assert g.names == ["a", "b", "c"]


def _blobs(folder, name: str) -> list[bytes]:
    con = sqlite3.connect(folder / "gallery.sqlite")
    try:
        return [r[0] for r in con.execute("SELECT e.vector FROM embeddings e JOIN identities i ON i.id = "
                                          "e.identity_id WHERE i.name = ?", (name,))]
    finally:
        con.close()


def _files_holding(folder, blobs: list[bytes]) -> dict[str, int]:
    counts = {}
    for path in sorted(folder.iterdir()):
        if path.name.endswith("-shm"):  # the log's index: page numbers, no row data
            continue
        data = path.read_bytes()
        counts[path.name] = sum(data.count(b) for b in blobs)
    return counts


def test_remove_leaves_no_bytes_of_the_person_in_the_database_or_its_log(folder):
    """Before: a removal only unlinked the rows: their bytes stayed in free pages and in the -wal file."""
    keeper = start_python(KEEP_OPEN, folder / "gallery.sqlite", DIM)  # 'held' stays in the write-ahead log
    try:
        assert keeper.stdout.readline().strip() == "committed"
        targets = _blobs(folder, "a") + _blobs(folder, "held")
        before = _files_holding(folder, targets)
        assert before.get("gallery.sqlite-wal", 0) > 0 and sum(before.values()) >= len(targets)
        with Gallery.open(folder) as g:
            g.remove("a")
            g.remove("held")
            assert g.names == ["b", "c"]
        after = _files_holding(folder, targets)
        assert after and all(n == 0 for n in after.values()), after
    finally:
        keeper.stdin.write("\n")
        keeper.stdin.flush()
        keeper.wait()
    with Gallery.open(folder) as g:
        assert g.names == ["b", "c"] and g.num_embeddings == 3


def test_remove_unknown_name_changes_nothing(folder):
    with Gallery.open(folder) as g:
        with pytest.raises(UnknownNameError, match="identity 'x' is not in the gallery"):
            g.remove("x")
        assert g.names == ["a", "b", "c"]


def test_export(folder, tmp_path):
    with Gallery.open(folder, readonly=True) as g:
        g.export(tmp_path / "e.npz")
        want = {n: g.embeddings_of(n) for n in g.names}
    with np.load(tmp_path / "e.npz") as z:
        assert list(z["identities"]) == ["a", "b", "c"]
        assert list(z["names"]) == ["a", "a", "a", "b", "b", "c"]
        assert list(z["sources"]) == ["a1.jpg", "a2.jpg", "a3.jpg", "b1.jpg", "b2.jpg", ""]
        assert json.loads(str(z["metadata"])) == TOY_META
        for name, rows in want.items():
            np.testing.assert_allclose(z["embeddings"][z["names"] == name], rows, atol=1e-6)


def test_export_needs_an_npz_name(folder, tmp_path):
    with Gallery.open(folder, readonly=True) as g:
        with pytest.raises(InvalidInputError, match="ending in .npz"):
            g.export(tmp_path / "e.csv")
    assert not (tmp_path / "e.csv").exists()


def test_writes_in_a_read_only_folder_are_refused(folder):
    with read_only(folder) as view:
        with Gallery.open(view, readonly=True) as g:
            assert [p.name for p in g.identities()] == ["a", "b", "c"]
            for change in (lambda: g.rename("a", "z"), lambda: g.remove("a")):
                with pytest.raises(GalleryWriteError, match="cannot write"):
                    change()
    with Gallery.open(folder) as g:
        assert g.names == ["a", "b", "c"]
