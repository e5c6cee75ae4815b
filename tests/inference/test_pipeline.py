"""The photo pipeline: worker threads read photos ahead in input order with a bounded look-ahead, and
the batched, threaded runs of the recognizer and of align_folder give what the photo-by-photo path gives."""
from __future__ import annotations

import shutil
import threading
import weakref
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from torch import nn

from facelivt import create_model
from facelivt.errors import InvalidInputError
from facelivt.inference import FaceRecognizer, ImageLoadError, NoFaceError, align_folder, prepare_in_order
from facelivt.inference.pipeline import lookahead
from model_helpers import randomize_model

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
CELEBA = DATA / "celeba_subset"
ALIGNED = DATA / "celeba_subset_112"


def _slow_square(x: int) -> int:
    threading.Event().wait(0.002 * (x % 3))  # uneven work: later items often finish first
    if x == 5:
        raise ValueError("five is unusable")
    return x * x


@pytest.mark.parametrize("workers", [0, 1, 3])
def test_results_come_in_input_order_with_failures_as_results(workers):
    out = list(prepare_in_order(_slow_square, iter(range(12)), workers))
    assert [p.index for p in out] == list(range(12))
    assert [p.value for p in out if p.index != 5] == [x * x for x in range(12) if x != 5]
    assert out[5].value is None and str(out[5].error) == "five is unusable"


def test_no_workers_runs_in_the_calling_thread():
    here = threading.get_ident()
    assert {p.value for p in prepare_in_order(lambda _: threading.get_ident(), range(4), 0)} == {here}
    assert here not in {p.value for p in prepare_in_order(lambda _: threading.get_ident(), range(4), 2)}


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_items_are_taken_only_as_room_frees_up(workers):
    taken, consumed, most = [0], [0], [0]

    def source():
        for i in range(50):
            taken[0] += 1
            most[0] = max(most[0], taken[0] - consumed[0])
            yield i

    for _ in prepare_in_order(lambda x: x, source(), workers):
        consumed[0] += 1
    assert consumed[0] == 50
    assert most[0] <= lookahead(workers) + 1


def test_a_bug_in_the_work_ends_the_run():
    def broken(x):
        raise KeyError(x)

    with pytest.raises(KeyError):
        list(prepare_in_order(broken, range(3), 2))


def test_a_consumer_that_stops_early_leaves_no_thread_behind():
    before = {t.ident for t in threading.enumerate()}
    for p in prepare_in_order(lambda x: x, range(1000), 2):
        if p.index == 3:
            break
    left = [t for t in threading.enumerate() if t.ident not in before and t.name.startswith("facelivt-photos")]
    assert left == []


@pytest.mark.parametrize("workers", [-1, 10_000, True, 1.5])
def test_a_bad_worker_count_is_refused(workers):
    with pytest.raises(InvalidInputError, match="workers must be an integer from 0 to"):
        list(prepare_in_order(lambda x: x, range(3), workers))
    with pytest.raises(InvalidInputError, match="workers must be an integer from 0 to"):
        FaceRecognizer(_Identity(), workers=workers)


class _Identity(nn.Module):
    def forward(self, x):
        return x.mean(dim=(2, 3))


@pytest.fixture(scope="module")
def network():
    return randomize_model(create_model("facelivtv2_s")).eval()


def _photos(reference, tmp_path: Path) -> list:
    """Real photos (one face, several faces, none), a corrupt file and a missing one, in one list."""
    keys = sorted(reference)
    one = [k for k in keys if len(reference[k]) == 1][:7]
    several = [k for k in keys if len(reference[k]) >= 2][:2]
    none = [k for k in keys if len(reference[k]) == 0][:1]
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes((CELEBA / one[0]).read_bytes()[:300])
    photos = [CELEBA / k for k in one[:3] + several[:1] + none + one[3:5]]
    return photos + [corrupt, CELEBA / several[1], tmp_path / "absent.jpg", *(CELEBA / k for k in one[5:])]


@pytest.mark.parametrize("face", ["largest", "all", "error"])
def test_the_threaded_batched_run_equals_the_photo_by_photo_run(network, detector, reference, tmp_path, face):
    photos = _photos(reference, tmp_path)
    one_by_one = FaceRecognizer(network, detector=detector, batch_size=1, workers=0)
    pipeline = FaceRecognizer(network, detector=detector, batch_size=5, workers=3)
    want = list(one_by_one.iter_faces(photos, face=face))
    got = list(pipeline.iter_faces(iter(photos), face=face))
    assert [r.index for r in got] == list(range(len(photos)))
    for w, g in zip(want, got):
        assert (type(g.error), str(g.error)) == (type(w.error), str(w.error))
        assert (g.found, g.faces) == (w.found, w.faces)
        if w.error is None:
            np.testing.assert_allclose(g.embeddings, w.embeddings, atol=1e-5)
            for dw, dg in zip(w.detections, g.detections):
                np.testing.assert_allclose(dg.box, dw.box, atol=1e-4)
    assert isinstance(got[4].error, NoFaceError) and isinstance(got[7].error, ImageLoadError)
    assert isinstance(got[9].error, FileNotFoundError)
    assert sum(r.error is None for r in got) == (7 if face == "error" else 9)


def test_embed_and_enroll_equal_the_photo_by_photo_path(network, detector, reference):
    photos = [CELEBA / k for k in sorted(reference) if len(reference[k]) == 1][:9]
    one_by_one = FaceRecognizer(network, detector=detector, batch_size=1, workers=0)
    pipeline = FaceRecognizer(network, detector=detector, batch_size=4, workers=2)
    np.testing.assert_allclose(pipeline.embed(photos), one_by_one.embed(photos), atol=1e-5)
    assert pipeline.enroll("a", photos) == one_by_one.enroll("a", photos) == 9


def test_aligned_crops_go_straight_to_the_batches(network):
    crops = sorted(ALIGNED.rglob("*.jpg"))[:11]
    one_by_one = FaceRecognizer(network, batch_size=1, workers=0)
    pipeline = FaceRecognizer(network, batch_size=4, workers=2)
    assert pipeline._detector is None
    np.testing.assert_allclose(pipeline.embed(crops, aligned=True), one_by_one.embed(crops, aligned=True), atol=1e-5)
    assert pipeline._detector is None  # no detector was made


class _Alive:
    """How many of the arrays it made are not yet freed (and the most at once)."""

    def __init__(self) -> None:
        self.now = self.most = 0

    def made(self, image: np.ndarray) -> np.ndarray:
        self.now += 1
        self.most = max(self.most, self.now)
        weakref.finalize(image, self._freed)
        return image

    def _freed(self) -> None:
        self.now -= 1


def _counted(paths: list[Path], alive: _Alive):
    """The photos as decoded arrays, made one at a time."""
    for path in paths:
        yield alive.made(np.array(Image.open(path).convert("RGB")))


@pytest.mark.parametrize("aligned", [False, True])
def test_a_long_generator_never_has_all_its_images_alive(network, detector, aligned):
    paths = sorted((ALIGNED if aligned else CELEBA).rglob("*.jpg"))[:30]
    rec = FaceRecognizer(network, detector=detector, batch_size=4, workers=2)
    alive = _Alive()
    results = sum(1 for _ in rec.iter_faces(_counted(paths, alive), aligned=aligned))
    assert results == 30 and alive.now == 0
    # read ahead by the workers, the one being handed over, and (aligned: the crop is the image) a batch
    bound = lookahead(2) + 2 + (rec.batch_size if aligned else 0)
    assert alive.most <= bound < 30


def test_align_folder_writes_the_same_crops_with_and_without_workers(detector, reference, tmp_path):
    src = tmp_path / "in"
    for photo in _photos(reference, tmp_path)[:9]:
        if photo.exists():
            (src / photo.parent.name).mkdir(parents=True, exist_ok=True)
            shutil.copy(photo, src / photo.parent.name / photo.name)
    reports = [align_folder(detector, src, tmp_path / f"out{w}", select="all", progress=False, workers=w) for w in (0, 3)]
    a, b = (r.to_dict() for r in reports)
    a.pop("seconds"), b.pop("seconds")
    assert a == b and a["aligned"] >= 5 and len(a["no_face"]) == 1 and len(a["unreadable"]) == 1
    files = sorted(p.relative_to(tmp_path / "out0") for p in (tmp_path / "out0").rglob("*.jpg"))
    assert len(files) == a["faces_written"]
    for rel in files:
        x = np.asarray(Image.open(tmp_path / "out0" / rel))
        y = np.asarray(Image.open(tmp_path / "out3" / rel))
        assert np.abs(x.astype(int) - y.astype(int)).max() <= 1
