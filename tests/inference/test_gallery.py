"""Gallery: enrolment, top-k search (faiss and numpy agree), removal, save/load round trip, bad input.
The database itself (concurrency, damage, disk full) is tested in test_gallery_store.py, the import of
old two-file galleries in test_gallery_legacy.py."""
from __future__ import annotations


import numpy as np
import pytest

from facelivt.inference.gallery import Gallery, GalleryMismatchError, faiss_available, l2_normalize

BACKENDS = ["numpy"] + (["faiss"] if faiss_available() else [])


def _identities(n: int, dim: int = 32, per: int = 3, noise: float = 0.3, seed: int = 0):
    """Synthetic identities: a random centre each, and noisy samples around it."""
    rng = np.random.default_rng(seed)
    centres = l2_normalize(rng.standard_normal((n, dim)))
    samples = centres[:, None, :] + noise / np.sqrt(dim) * rng.standard_normal((n, per, dim))
    return centres, samples.astype(np.float32)


def test_faiss_is_installed_here():
    # faiss-cpu is optional for users, but installed in this environment so both paths are tested
    assert faiss_available()


@pytest.mark.parametrize("backend", BACKENDS)
def test_identify_enrolled_identity(backend):
    centres, samples = _identities(50)
    g = Gallery(32, backend=backend)
    for i in range(50):
        g.enroll_embeddings(f"id{i}", samples[i, :2])  # two photos enrolled
    assert len(g) == 50 and g.num_embeddings == 100 and "id7" in g
    results = g.search(samples[:, 2], k=3)  # the third photo of each identity as query
    assert [r[0].name for r in results] == [f"id{i}" for i in range(50)]
    for r in results:
        assert len(r) == 3 and r[0].score >= r[1].score >= r[2].score
        assert -1.0 <= r[2].score <= 1.0 + 1e-6


def test_backends_agree_and_match_brute_force():
    if len(BACKENDS) < 2:
        pytest.skip("faiss not installed")  # covered by test_faiss_is_installed_here
    _, samples = _identities(2000, dim=64, per=1, seed=1)
    rng = np.random.default_rng(2)
    queries = rng.standard_normal((20, 64)).astype(np.float32)
    gs = {b: Gallery(64, backend=b) for b in BACKENDS}
    for b, g in gs.items():
        for i in range(2000):
            g.enroll_embeddings(f"p{i}", samples[i])
    brute = l2_normalize(queries) @ l2_normalize(samples[:, 0]).T
    expected = np.argsort(-brute, axis=1)[:, :10]
    for g in gs.values():
        res = g.search(queries, k=10)
        for q in range(20):
            assert [m.name for m in res[q]] == [f"p{i}" for i in expected[q]]
            assert np.allclose([m.score for m in res[q]], brute[q, expected[q]], atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_index_follows_updates(backend):
    centres, samples = _identities(5)
    g = Gallery(32, backend=backend)
    g.enroll_embeddings("a", samples[0, :1])
    g.enroll_embeddings("b", samples[1, :1])
    assert g.search(samples[1, 1], 1)[0][0].name == "b"  # builds the index
    g.enroll_embeddings("c", samples[2])  # appended after the index was built
    assert g.search(samples[2, 0], 1)[0][0].name == "c"
    g.enroll_embeddings("a", samples[3])  # existing identity changes: template moves
    assert np.allclose(g.template("a"), l2_normalize(l2_normalize(np.concatenate([samples[0, :1], samples[3]])).sum(0)))
    assert g.search(samples[3, 0], 1)[0][0].name == "a"
    g.remove("b")
    assert "b" not in g and len(g) == 2 and g.num_embeddings == 1 + 3 + 3
    assert {m.name for m in g.search(samples[1, 0], 5)[0]} == {"a", "c"}
    with pytest.raises(KeyError):
        g.remove("b")


@pytest.mark.parametrize("backend", BACKENDS)
def test_save_load_round_trip(tmp_path, backend):
    _, samples = _identities(30, per=2)
    g = Gallery(32, metadata={"model": "toy", "threshold": 0.4}, backend=backend)
    for i in range(30):
        g.enroll_embeddings(f"名前{i}" if i % 2 else f"id {i}", samples[i])
    g.save(tmp_path / "gal")
    # one SQLite database now (was gallery.json + embeddings.safetensors); -wal/-shm while it is open
    files = {p.name for p in (tmp_path / "gal").iterdir()}
    assert "gallery.sqlite" in files and files <= {"gallery.sqlite", "gallery.sqlite-wal", "gallery.sqlite-shm"}
    h = Gallery.load(tmp_path / "gal", backend=backend)
    assert h.names == g.names and h.dim == 32 and h.metadata == g.metadata
    assert np.allclose(h.embeddings_of("id 4"), g.embeddings_of("id 4"))
    q = samples[:, 0]
    assert [[m.name for m in r] for r in h.search(q, 4)] == [[m.name for m in r] for r in g.search(q, 4)]
    # a loaded gallery keeps growing and saves again
    h.enroll_embeddings("new", samples[0])
    h.save(tmp_path / "gal")
    with Gallery.load(tmp_path / "gal") as again:
        assert len(again) == 31
    assert len(g) == 31  # g was saved there, so it is backed by the same database and sees it
    g.close(), h.close()
    assert {p.name for p in (tmp_path / "gal").iterdir()} == {"gallery.sqlite"}  # the log is folded in on close


def test_from_embeddings_groups_rows_by_label():
    _, samples = _identities(4, per=3)
    flat = samples.reshape(12, 32)
    labels = np.repeat(np.arange(4), 3)[::-1].copy()  # identity 3 first
    g = Gallery.from_embeddings(["a", "b", "c", "d"], flat, labels)
    assert g.num_embeddings == 12 and np.allclose(g.embeddings_of("d"), l2_normalize(flat[:3]))
    with pytest.raises(ValueError, match="at least one embedding"):
        Gallery.from_embeddings(["a", "b", "c", "d", "e"], flat, labels)
    with pytest.raises(ValueError, match="distinct"):
        Gallery.from_embeddings(["a", "a", "c", "d"], flat, labels)


def test_bad_input():
    g = Gallery(8)
    with pytest.raises(ValueError, match="empty"):
        g.search(np.ones(8), 1)
    with pytest.raises(ValueError, match="dimension 8"):
        g.enroll_embeddings("a", np.ones(5))
    with pytest.raises(ValueError, match="NaN"):
        g.enroll_embeddings("a", np.full(8, np.nan))
    with pytest.raises(ValueError, match="all-zero"):
        g.enroll_embeddings("a", np.zeros(8))
    with pytest.raises(ValueError, match="non-empty string"):
        g.enroll_embeddings("  ", np.ones(8))
    g.enroll_embeddings("a", np.ones(8))
    with pytest.raises(ValueError, match="k must be"):
        g.search(np.ones(8), 0)
    assert len(g.search(np.ones(8), 10)[0]) == 1  # k above the gallery size
    with pytest.raises(ValueError, match="backend"):
        Gallery(8, backend="annoy")
    with pytest.raises(KeyError):
        g.template("zzz")


def test_many_identities_stay_fast():
    """20k identities (a fifth of the 100k target) enrol and search quickly on a shared CPU."""
    import time

    rng = np.random.default_rng(0)
    emb = rng.standard_normal((20_000, 512)).astype(np.float32)
    t0 = time.perf_counter()
    g = Gallery.from_embeddings([f"id{i}" for i in range(len(emb))], emb)
    res = g.search(emb[:50], k=5)
    elapsed = time.perf_counter() - t0
    assert [r[0].name for r in res] == [f"id{i}" for i in range(50)]
    assert elapsed < 20.0


def test_a_flip_mismatch_names_the_flip_setting_and_what_to_pass(tmp_path):
    meta = {"model": "facelivt_s", "weights_fingerprint": "f00d"}
    for gallery_flip, run_flip, enrolled, run, advice in (
        (True, False, "with flip", "without flip (--no-flip)", "drop --no-flip (flip=True)"),
        (False, True, "without flip (--no-flip)", "with flip", "pass --no-flip (flip=False)"),
    ):
        folder = tmp_path / f"g{gallery_flip}"
        with Gallery.open(folder, create=True, dim=8, metadata=dict(meta, flip=gallery_flip)) as g:
            g.enroll_embeddings("a", np.ones(8, dtype=np.float32))
        with pytest.raises(GalleryMismatchError) as info:
            Gallery.open(folder, dim=8, metadata=dict(meta, flip=run_flip))
        msg = str(info.value)
        assert msg.startswith(f"gallery {folder} was enrolled {enrolled}") and f"this run embeds {run}" in msg, msg
        assert msg.endswith(f"not comparable; {advice} to use this gallery"), msg
        assert "different models" not in msg
    with pytest.raises(GalleryMismatchError, match="different weights are not comparable"):
        Gallery.open(tmp_path / "gTrue", dim=8, metadata=dict(meta, flip=True, weights_fingerprint="beef"))
    with pytest.raises(GalleryMismatchError, match="model='facelivt_s'.*different models are not comparable"):
        Gallery.open(tmp_path / "gTrue", dim=8, metadata=dict(meta, flip=True, model="facelivt_m"))


class _User:
    """A recognizer as the gallery's lifecycle sees it (GalleryUser): no model, no detector."""

    def __init__(self, model: str = "toy", threshold: float = 0.3, source: str = "") -> None:
        from facelivt.inference.calibration import UNCALIBRATED

        self.embedding_size = 8
        self.threshold, self.threshold_source = threshold, source or UNCALIBRATED
        self.model = model
        self.gallery = Gallery(8, metadata=self.gallery_metadata())

    def gallery_metadata(self) -> dict:
        return {"model": self.model, "weights_fingerprint": "0" * 16, "flip": True}


def test_gallery_lifecycle_of_a_recognizer(tmp_path):
    """open_for / attach / save(threshold=...) need only what GalleryUser names: a saved threshold is
    taken by an uncalibrated recognizer, not by one whose threshold was given; another model is refused."""
    maker = _User(threshold=0.42, source="best-accuracy on pairs")
    assert Gallery.open_for(maker, tmp_path / "g", create=True) is maker.gallery
    maker.gallery.enroll_embeddings("a", np.ones(8, np.float32))
    maker.gallery.save(tmp_path / "g", threshold=maker.threshold, threshold_source=maker.threshold_source)
    maker.gallery.close()
    fresh, given = _User(), _User(threshold=0.5, source="given")
    with Gallery.open_for(fresh, tmp_path / "g") as g:
        assert fresh.gallery is g and g.names == ["a"]
        assert (fresh.threshold, fresh.threshold_source) == (0.42, "best-accuracy on pairs")
    with Gallery.open(tmp_path / "g") as g:
        assert g.attach(given) is g and given.gallery is g and given.threshold == 0.5
    with pytest.raises(ValueError, match="not comparable"):
        Gallery.open_for(_User(model="other"), tmp_path / "g")
    with Gallery.open_for(_User(model="other"), tmp_path / "g", check=False) as g:
        assert g.names == ["a"]
