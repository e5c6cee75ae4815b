"""Streamed embedding into a resumable folder (embeddings.npy + index.csv + run.json) on real aligned
crops (../shared/data/celeba_subset_112): rows on disk as they are made, a torn last record dropped, a
changed photo embedded again, a run with other settings refused."""
from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import numpy as np
import pytest

from facelivt.errors import InvalidInputError
from facelivt.inference import FaceRecognizer, embed_to_folder, read_embeddings
from facelivt.inference.embed_stream import INDEX_HEADER, INDEX_NAME, NPY_NAME, EmbeddingStream, npy_header

ALIGNED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "celeba_subset_112"


@pytest.fixture(scope="module")
def rec(tmp_path_factory) -> FaceRecognizer:
    from facelivt import create_model
    from facelivt.models import save_weights

    path = tmp_path_factory.mktemp("w") / "facelivt_s.safetensors"
    save_weights(create_model("facelivt_s").eval(), path)
    return FaceRecognizer("facelivt_s", path, batch_size=4)


@pytest.fixture
def crops(tmp_path) -> list[Path]:
    """Eight real aligned crops of two people, copied (the test changes one)."""
    people = sorted(d for d in ALIGNED.iterdir() if d.is_dir())[:2]
    out = []
    for person in people:
        for src in sorted(person.iterdir())[:4]:
            dst = tmp_path / "in" / person.name / src.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dst)
            out.append(dst)
    return out


def _rows(folder: Path) -> dict[tuple[str, int], np.ndarray]:
    vectors, entries = read_embeddings(folder)
    keys = [(path, face) for path, face, _ in entries]
    assert len(set(keys)) == len(keys), "a photo's face is indexed twice"
    return {k: np.asarray(v) for k, v in zip(keys, vectors)}


def test_rows_are_readable_by_numpy_and_csv(rec, crops, tmp_path):
    report = embed_to_folder(rec, crops, tmp_path / "out", aligned=True, progress=False)
    assert (report.embedded, report.rows, report.dim) == (8, 8, rec.embedding_size)
    vectors = np.load(tmp_path / "out" / NPY_NAME)
    assert vectors.shape == (8, rec.embedding_size) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    with open(tmp_path / "out" / INDEX_NAME, newline="", encoding="utf-8") as f:
        lines = list(csv.reader(f))
    assert tuple(lines[0]) == INDEX_HEADER and [int(r[0]) for r in lines[1:]] == list(range(8))
    assert sorted(r[1] for r in lines[1:]) == sorted(map(str, crops))
    expected = rec.embed(crops, aligned=True)
    got = _rows(tmp_path / "out")
    for path, row in zip(crops, expected):
        np.testing.assert_allclose(got[(str(path), 0)], row, atol=1e-5)


def test_resume_skips_done_photos_and_drops_a_torn_record(rec, crops, tmp_path):
    out = tmp_path / "out"
    embed_to_folder(rec, crops[:5], out, aligned=True, progress=False)
    whole = _rows(out)
    with open(out / NPY_NAME, "ab") as f:  # a kill while the next photo was written: rows, then half a line
        f.write(np.ones(rec.embedding_size + 7, "<f4").tobytes())
    with open(out / INDEX_NAME, "a", encoding="utf-8") as f:
        f.write(f"5,{crops[5]},0,abc")
    report = embed_to_folder(rec, crops, out, aligned=True, resume=True, progress=False)
    assert (report.skipped, report.embedded, report.rows) == (5, 3, 8)
    fresh = embed_to_folder(rec, crops, tmp_path / "fresh", aligned=True, progress=False)
    assert fresh.rows == 8
    got, want = _rows(out), _rows(tmp_path / "fresh")
    assert got.keys() == want.keys()
    for key in want:
        np.testing.assert_allclose(got[key], want[key], atol=1e-5)
        if key in whole:
            np.testing.assert_array_equal(got[key], whole[key])  # kept, not embedded again
    assert np.load(out / NPY_NAME).shape == (8, rec.embedding_size)


def test_a_changed_photo_is_embedded_again(rec, crops, tmp_path):
    out = tmp_path / "out"
    embed_to_folder(rec, crops, out, aligned=True, progress=False)
    before = _rows(out)
    shutil.copy(crops[-1], crops[0])  # other content under the same name
    report = embed_to_folder(rec, crops, out, aligned=True, resume=True, progress=False)
    assert (report.skipped, report.replaced, report.embedded, report.rows) == (7, 1, 1, 8)
    after = _rows(out)
    assert after.keys() == before.keys()
    np.testing.assert_allclose(after[(str(crops[0]), 0)], before[(str(crops[-1]), 0)], atol=1e-5)
    assert not np.allclose(after[(str(crops[0]), 0)], before[(str(crops[0]), 0)], atol=1e-3)
    assert np.load(out / NPY_NAME).shape == (8, rec.embedding_size)


def test_an_earlier_run_is_not_appended_to_without_resume(rec, crops, tmp_path):
    embed_to_folder(rec, crops[:2], tmp_path / "out", aligned=True, progress=False)
    with pytest.raises(InvalidInputError, match="pass --resume"):
        embed_to_folder(rec, crops, tmp_path / "out", aligned=True, progress=False)
    assert len(_rows(tmp_path / "out")) == 2


def test_resume_with_other_settings_is_refused(rec, crops, tmp_path):
    embed_to_folder(rec, crops[:2], tmp_path / "out", aligned=True, progress=False)
    with pytest.raises(InvalidInputError, match="other settings: aligned=True"):
        embed_to_folder(rec, crops, tmp_path / "out", aligned=False, resume=True, progress=False)
    assert len(_rows(tmp_path / "out")) == 2


def test_a_damaged_index_is_refused(rec, crops, tmp_path):
    out = tmp_path / "out"
    embed_to_folder(rec, crops[:3], out, aligned=True, progress=False)
    lines = (out / INDEX_NAME).read_text().splitlines(keepends=True)
    (out / INDEX_NAME).write_text(lines[0] + lines[2] + lines[1] + lines[3])  # rows out of order, not torn
    with pytest.raises(InvalidInputError, match="damaged at row 0"):
        embed_to_folder(rec, crops, out, aligned=True, resume=True, progress=False)


def test_npy_header_has_a_fixed_size_numpy_reads():
    for rows in (0, 7, 10**12):
        header = npy_header(rows, 512)
        assert len(header) == 128 and len(header) % 64 == 0
    data = npy_header(3, 2) + np.arange(6, dtype="<f4").tobytes()
    np.testing.assert_array_equal(np.load(io.BytesIO(data)), np.arange(6, dtype=np.float32).reshape(3, 2))


def test_two_runs_cannot_write_one_folder(rec, crops, tmp_path):
    out = tmp_path / "out"
    run = {"model": rec.model_name, "weights_fingerprint": rec.weights_fingerprint, "flip": True,
           "dim": rec.embedding_size, "aligned": True, "face": "largest"}
    first = EmbeddingStream.open(out, run)
    try:
        with pytest.raises(InvalidInputError, match="another `facelivt embed` is writing"):
            EmbeddingStream.open(out, run, resume=True)
    finally:
        first.close()
    EmbeddingStream.open(out, run, resume=True).close()  # free again once the first is closed
