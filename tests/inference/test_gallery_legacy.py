"""Old two-file galleries (gallery.json + embeddings.safetensors): imported once into gallery.sqlite with
equal embeddings, never twice; incomplete or inconsistent ones are refused before anything is written."""
from __future__ import annotations

import json
import multiprocessing as mp
import shutil
import sqlite3

import numpy as np
import pytest
from disk_helpers import listing
from gallery_helpers import unit_rows, write_legacy_gallery
from safetensors.numpy import save_file

from facelivt.inference import Gallery, GalleryError, InvalidThresholdError

DIM = 16
COUNTS = [1, 2, 3, 4]  # images per identity: unequal, so a reordered identity list shows
META = {"model": "facelivt_s", "weights_fingerprint": "0123abcd", "flip": True, "threshold": 0.42,
        "threshold_source": "given"}


def _legacy(folder, **overrides):
    names = [f"id{i}" for i in range(len(COUNTS))]
    labels = np.repeat(np.arange(len(COUNTS)), COUNTS).astype(np.int64)
    emb = unit_rows(len(labels), DIM, seed=3)
    write_legacy_gallery(folder, names, emb, labels, dict(overrides.pop("metadata", META)), **overrides)
    return names, emb, labels


def _db_rows(folder):
    con = sqlite3.connect(folder / "gallery.sqlite")
    rows = con.execute("SELECT i.name, e.vector FROM embeddings e JOIN identities i ON i.id = e.identity_id "
                       "ORDER BY e.id").fetchall()
    con.close()
    return [r[0] for r in rows], np.frombuffer(b"".join(r[1] for r in rows), "<f4").reshape(-1, DIM)


def test_old_gallery_is_imported_once(tmp_path):
    folder = tmp_path / "g"
    names, emb, labels = _legacy(folder)
    old = listing(folder)
    with Gallery.open(folder) as g:
        assert g.names == names and g.num_embeddings == len(emb) and g.metadata == META
        for i, name in enumerate(names):
            assert np.allclose(g.embeddings_of(name), emb[labels == i], atol=1e-6)
    row_names, vectors = _db_rows(folder)
    assert row_names == [names[i] for i in labels] and np.array_equal(vectors, emb)  # bit for bit
    # the old files are kept, renamed, unchanged
    assert {p.name for p in folder.iterdir()} == {"gallery.sqlite", "gallery.json.imported",
                                                  "embeddings.safetensors.imported"}
    assert all((folder / (name + ".imported")).read_bytes() == data for name, data in old.items())
    with Gallery.open(folder) as g:  # a second open does not import again
        assert g.num_embeddings == len(emb)
    for name in old:  # nor do the old files copied back (an old backup): the database is the gallery
        shutil.copy(folder / (name + ".imported"), folder / name)
    with Gallery.open(folder, create=True, dim=DIM) as g:
        assert g.num_embeddings == len(emb) and len(g) == len(names)


def _open_and_count(folder, out):
    with Gallery.open(folder) as g:
        out.put(g.num_embeddings)


def test_processes_opening_it_at_once_import_it_once(tmp_path):
    folder = tmp_path / "g"
    _, emb, _ = _legacy(folder)
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_open_and_count, args=(folder, out)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * len(procs)
    assert sorted(out.get(timeout=5) for _ in procs) == [len(emb)] * len(procs)
    assert len(_db_rows(folder)[0]) == len(emb)


@pytest.mark.parametrize("missing", ["gallery.json", "embeddings.safetensors"])
def test_incomplete_old_gallery_is_refused_and_kept(tmp_path, missing):
    """Before: a missing gallery.json made `enroll` start a new gallery over the embeddings (4 became 1)."""
    folder = tmp_path / "g"
    _legacy(folder)
    (folder / missing).unlink()
    before = listing(folder)
    for kwargs in ({}, {"create": True, "dim": DIM}):  # identify, and enroll (which creates galleries)
        with pytest.raises(GalleryError, match=f"incomplete: .* but {missing} is missing"):
            Gallery.open(folder, **kwargs)
    assert listing(folder) == before


def test_imported_files_without_their_database_are_refused(tmp_path):
    folder = tmp_path / "g"
    _legacy(folder)
    Gallery.open(folder).close()
    (folder / "gallery.sqlite").unlink()
    with pytest.raises(GalleryError, match="gallery.sqlite is missing, but .*imported"):
        Gallery.open(folder, create=True, dim=DIM)
    assert not (folder / "gallery.sqlite").exists()


BROKEN = [
    ({"identities": ["id0", "id1", "id2"]}, GalleryError, "labels refer"),
    ({"identities": ["a", "a", "b", "c"]}, GalleryError, "twice"),
    ({"identities": [1, 2, 3, 4]}, GalleryError, "non-empty strings"),
    ({"dim": 8}, GalleryError, "dim"),
    ({"format": "other"}, GalleryError, "not a facelivt gallery"),
    ({"version": 2}, GalleryError, "unsupported gallery version"),
    # names reordered with their counts: the counts no longer match the labels
    ({"identities": ["id3", "id2", "id1", "id0"], "counts": COUNTS[::-1]}, GalleryError, "reordered"),
    ({"metadata": dict(META, threshold=float("nan"))}, InvalidThresholdError, "threshold must be a finite"),
    ({"metadata": dict(META, threshold=-1)}, InvalidThresholdError, "threshold must be a finite"),
    ({"metadata": dict(META, threshold=1.5)}, InvalidThresholdError, "threshold must be a finite"),
    ({"metadata": dict(META, flip="yes")}, GalleryError, "flip must be a bool"),
]


@pytest.mark.parametrize("overrides,error,match", BROKEN)
def test_inconsistent_old_gallery_is_refused(tmp_path, overrides, error, match):
    folder = tmp_path / "g"
    _legacy(folder, **overrides)
    before = listing(folder)
    with pytest.raises(error, match=match) as info:
        Gallery.open(folder)
    assert isinstance(info.value, ValueError)  # and a FaceLiVTError: the CLI shows it as one line
    assert listing(folder) == before  # nothing written, nothing renamed


def test_damaged_old_files_are_refused(tmp_path):
    folder = tmp_path / "g"
    names, emb, labels = _legacy(folder)
    good_json = (folder / "gallery.json").read_text()
    cases = [
        ("gallery.json", "{broken", "JSON"),
        ("embeddings.safetensors", b"junk", "cannot read"),
    ]
    for name, data, match in cases:
        (folder / name).write_bytes(data.encode() if isinstance(data, str) else data)
        with pytest.raises(GalleryError, match=match):
            Gallery.open(folder)
        write_legacy_gallery(folder, names, emb, labels, dict(META))
    # labels stored as float32 (before: a TypeError in identify) and float embeddings of another kind
    save_file({"embeddings": emb, "labels": labels.astype(np.float32)}, str(folder / "embeddings.safetensors"))
    with pytest.raises(GalleryError, match="labels must be integers"):
        Gallery.open(folder)
    save_file({"embeddings": emb.astype(np.int32), "labels": labels}, str(folder / "embeddings.safetensors"))
    with pytest.raises(GalleryError, match="embeddings must be floats"):
        Gallery.open(folder)
    assert json.loads(good_json)["identities"] == names and not (folder / "gallery.sqlite").exists()
