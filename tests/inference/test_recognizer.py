"""FaceRecognizer: embed / verify / calibrate / enroll / identify, with a deterministic toy embedder
(synthetic identity check) and with FaceLiVT-S (random weights: shapes and round trips only)."""
from __future__ import annotations

import io
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance
from torch import nn

from facelivt.inference import FaceRecognizer, Gallery, ImageLoadError, InvalidThresholdError, NoFaceError, SeveralFacesError

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
CELEBA = DATA / "celeba_subset"


class PixelEmbedder(nn.Module):
    """A fixed 'network': 16x16 grey thumbnail of the crop, mean removed (192-d with 3 channels pooled)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = nn.functional.adaptive_avg_pool2d(x, 8).flatten(1)
        return t - t.mean(dim=1, keepdim=True)


def _variant(path: Path, tmp_path: Path) -> Path:
    """Another 'photo' of the same face: rescaled, brighter, re-encoded at low quality."""
    img = Image.open(path).convert("RGB")
    img = img.resize((int(img.width * 0.8), int(img.height * 0.8)), Image.Resampling.BILINEAR)
    img = ImageEnhance.Brightness(img).enhance(1.15)
    out = tmp_path / f"variant_{path.parent.name}_{path.name}"
    img.save(out, quality=70)
    return out


@pytest.fixture(scope="module")
def toy(detector) -> FaceRecognizer:
    return FaceRecognizer(PixelEmbedder(), detector=detector, batch_size=4)


@pytest.fixture(scope="module")
def people(reference) -> dict[str, list[Path]]:
    """Six identities with two single-face photos each."""
    out: dict[str, list[Path]] = {}
    for key in sorted(reference):
        ident = key.split("/")[0]
        if len(reference[key]) == 1 and len(out.get(ident, [])) < 2:
            out.setdefault(ident, []).append(CELEBA / key)
        if sum(len(v) == 2 for v in out.values()) == 6:
            break
    return {k: v for k, v in out.items() if len(v) == 2}


def test_embed_shapes_and_normalisation(toy, people):
    files = [p for v in people.values() for p in v][:5]
    emb = toy.embed(files)
    assert emb.shape == (5, 192) and emb.dtype == np.float32
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    single = toy.embed(files[0])
    assert np.allclose(single[0], emb[0], atol=1e-5)  # batching does not change results
    crops = np.stack([toy.align(f)[0] for f in files])
    assert np.allclose(toy.embed_aligned(crops), emb, atol=1e-5)
    assert np.allclose(toy.embed(list(crops), aligned=True), emb, atol=1e-5)


def test_flip_sum(detector, one_face_photo):
    crop = FaceRecognizer(PixelEmbedder(), detector=detector).align(one_face_photo)[0]
    plain = FaceRecognizer(PixelEmbedder(), detector=detector, flip=False)
    x = torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 127.5 - 1
    m = PixelEmbedder()
    want = nn.functional.normalize(m(x) + m(torch.flip(x, dims=[3])), dim=1)[0].numpy()
    assert np.allclose(FaceRecognizer(m, detector=detector).embed_aligned(crop)[0], want, atol=1e-5)
    assert not np.allclose(plain.embed_aligned(crop)[0], want, atol=1e-3)


def test_a_score_is_the_dot_product_of_the_unit_embeddings(toy, people):
    """The embeddings are normalised once (embed_aligned); compare takes their dot product in float64."""
    a, b = (toy.align(p)[0] for p in next(iter(people.values())))
    ea, eb = toy.embed_aligned(np.stack([a, b])).astype(np.float64)
    cmp = toy.compare(a, b, aligned=True)
    assert cmp.score == float(ea @ eb) and 0.0 < cmp.score < 1.0


def test_synthetic_identity_enroll_identify(toy, people, tmp_path):
    """Enrolled identities are found again from another photo of the same face, and survive a round trip."""
    toy.gallery = toy._new_gallery()
    for name, photos in people.items():
        assert toy.enroll(name, photos[:1]) == 1
    assert len(toy.gallery) == len(people) >= 5
    for name, photos in people.items():
        matches = toy.identify(_variant(photos[0], tmp_path), k=3)
        assert matches[0].name == name and len(matches) == 3
        assert matches[0].score > matches[1].score
        assert matches[0].score > 0.95
    first = next(iter(people))
    assert toy.enroll(first, people[first][1:]) == 1  # a second photo joins the identity
    assert len(toy.gallery.embeddings_of(first)) == 2 and len(toy.gallery) == len(people)
    toy.threshold = 0.5
    toy.gallery.save(tmp_path / "gallery", threshold=toy.threshold, threshold_source=toy.threshold_source)
    again = FaceRecognizer(PixelEmbedder(), detector=toy.detector)
    Gallery.open_for(again, tmp_path / "gallery")
    assert again.gallery.names == toy.gallery.names and again.threshold == 0.5
    name, photos = list(people.items())[1]
    assert again.identify(_variant(photos[0], tmp_path), k=1)[0].name == name


def test_gallery_from_another_model_is_refused(toy, people, tmp_path):
    class Other(PixelEmbedder):
        pass

    toy.gallery = toy._new_gallery()
    toy.enroll("someone", list(people.values())[0][:1])
    toy.gallery.save(tmp_path / "g", threshold=toy.threshold, threshold_source=toy.threshold_source)
    with pytest.raises(ValueError, match="not comparable"):
        Gallery.open_for(FaceRecognizer(Other(), detector=toy.detector), tmp_path / "g")


def test_verify_and_calibrate(toy, people, tmp_path):
    photos = [p for v in people.values() for p in v]
    score, same = toy.verify(photos[0], _variant(photos[0], tmp_path))
    assert score > 0.9 and isinstance(same, bool)
    pairs = [(p, _variant(p, tmp_path), True) for p in photos[:4]] + [
        (photos[i], photos[i + 2], False) for i in range(0, 8, 2)
    ]
    cal = toy.calibrate(pairs)
    assert cal.num_pairs == 8 and cal.accuracy == 1.0
    assert toy.threshold == cal.threshold and "best-accuracy" in toy.threshold_source
    for a, b, label in pairs:
        assert toy.verify(a, b)[1] == label
    # a pairs list file, with one unusable pair left out
    lines = [f"{a}\t{b}\t{int(s)}" for a, b, s in pairs] + [f"{tmp_path / 'missing.jpg'}\t{photos[0]}\t1"]
    (tmp_path / "pairs.txt").write_text("\n".join(lines))
    assert toy.calibrate(tmp_path / "pairs.txt", target_far=0.0).num_pairs == 8


def test_calibrate_from_bin(toy, people, tmp_path):
    from facelivt.evaluation.binset import write_bin

    photos = [p for v in people.values() for p in v][:8]
    crops = [toy.align(p)[0] for p in photos]
    enc = []
    for c in crops:
        buf = io.BytesIO()
        Image.fromarray(c).save(buf, format="PNG")
        enc.append(buf.getvalue())
    images, issame = [], []
    for i in range(4):  # same-crop pairs and different-person pairs
        images += [enc[i], enc[i]]
        issame.append(True)
        images += [enc[i], enc[i + 4]]
        issame.append(False)
    write_bin(tmp_path / "set.bin", images, issame)
    cal = toy.calibrate(tmp_path / "set.bin")
    assert cal.num_pairs == 8 and cal.accuracy == 1.0


def test_bad_inputs_are_clear(toy, no_face_photo, tmp_path):
    with pytest.raises(NoFaceError):
        toy.embed(no_face_photo)
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    with pytest.raises(ImageLoadError):
        toy.verify(bad, no_face_photo)
    good = next(CELEBA.rglob("*.jpg"))
    results = list(toy.iter_embed([good, bad, no_face_photo]))
    errors = {i: e for i, _, e in results if e is not None}
    assert set(errors) == {1, 2} and isinstance(errors[2], NoFaceError)
    with pytest.raises(ValueError, match="112x112"):
        toy.embed(good, aligned=True)
    with pytest.raises(ValueError, match="crops"):
        toy.embed_aligned(np.zeros((2, 100, 100, 3), np.uint8))
    with pytest.raises(ValueError, match="empty"):
        FaceRecognizer(PixelEmbedder(), detector=toy.detector).identify(good)


def test_facelivt_s_end_to_end(detector, one_face_photo, tmp_path):
    """The real network (random weights) wired through detection, gallery and weights round trip."""
    from facelivt import create_model
    from facelivt.models import save_weights

    weights = tmp_path / "s.safetensors"
    model = create_model("facelivt_s")
    model.eval()
    save_weights(model, weights)
    rec = FaceRecognizer("facelivt_s", weights, detector=detector)
    emb = rec.embed([one_face_photo, one_face_photo])
    assert emb.shape == (2, 512) and np.allclose(emb[0], emb[1], atol=1e-5)
    train_form = FaceRecognizer("facelivt_s", weights, detector=detector, deploy=False)
    assert np.allclose(train_form.embed(one_face_photo), emb[:1], atol=1e-4)  # deploy form = same function
    rec.enroll("me", [one_face_photo])
    rec.gallery.save(tmp_path / "g", threshold=rec.threshold, threshold_source=rec.threshold_source)
    rec2 = FaceRecognizer("facelivt_s", weights, detector=detector)
    Gallery.open_for(rec2, tmp_path / "g")
    assert rec2.identify(one_face_photo, k=1)[0].name == "me"
    with pytest.warns(UserWarning, match="random"):
        random = FaceRecognizer("facelivt_s", pretrained=False, detector=detector)
    with pytest.raises(ValueError, match="weights_fingerprint"):
        Gallery.open_for(random, tmp_path / "g")
    with pytest.raises(FileNotFoundError):
        FaceRecognizer("facelivt_s", tmp_path / "none.safetensors")
    with pytest.raises(ValueError, match="resnet50"):
        FaceRecognizer("resnet50", weights)


TRAINED = os.environ.get("FACELIVT_TRAINED_WEIGHTS")


@pytest.mark.skipif(
    not TRAINED,
    reason="needs FACELIVT_TRAINED_WEIGHTS=<facelivt_s weights from `facelivt train configs/cpu_small.yaml`>",
)
def test_trained_model_identifies_held_out_people(detector, reference):
    """With the small CPU training run's model: enrol one raw photo of each identity that training
    held out, identify another photo of it; the right person must rank far above chance."""
    from facelivt.data.folder import scan_image_folder
    from facelivt.data.loader import split_identities

    classes, samples = scan_image_folder(DATA / "celeba_subset_112")
    labels = np.array([label for _, label in samples])
    _, held_idx = split_identities(labels, 0.2, 0)  # configs/cpu_small.yaml: held_out_fraction 0.2, split_seed 0
    held = sorted({classes[labels[i]] for i in held_idx})
    rec = FaceRecognizer("facelivt_s", TRAINED, detector=detector)
    pairs = []
    for ident in held:
        keys = [k for k in sorted(reference) if k.startswith(ident + "/") and len(reference[k]) == 1]
        if len(keys) >= 2:
            pairs.append((ident, CELEBA / keys[0], CELEBA / keys[-1]))
    assert len(pairs) >= 40
    for ident, first, _ in pairs:
        rec.enroll(ident, first)
    ranks = []
    for ident, _, second in pairs:
        names = [m.name for m in rec.identify(second, k=len(pairs))]
        ranks.append(names.index(ident))
    ranks = np.array(ranks)
    n = len(pairs)
    top1, top5 = (ranks == 0).mean(), (ranks < 5).mean()
    print(f"held-out identification: {n} people, top-1 {top1:.2f} (chance {1 / n:.3f}), top-5 {top5:.2f}")
    assert top1 >= 5.0 / n and top5 >= 3 * 5.0 / n
    assert np.median(ranks) < n / 4


def test_threshold_is_validated_wherever_it_is_set(toy):
    for bad in (float("nan"), -1.0, 1.5, float("inf")):
        with pytest.raises(InvalidThresholdError, match="threshold must be a finite"):
            FaceRecognizer(PixelEmbedder(), detector=toy.detector, threshold=bad)
    before = toy.threshold
    with pytest.raises(InvalidThresholdError):
        toy.threshold = float("nan")
    assert toy.threshold == before


def test_photo_with_several_faces(toy, multi_face_photo, one_face_photo, caplog):
    """Before: the largest face of a group photo was used without a word; now it is said, and
    face="error" refuses the photo, face="all" uses every face."""
    found = len(toy.detect(multi_face_photo))
    assert found >= 3
    with caplog.at_level(logging.WARNING, logger="facelivt.inference.recognizer"):
        largest = toy.embed(multi_face_photo)
    assert largest.shape == (1, 192)
    assert any(str(multi_face_photo) in r.getMessage() and f"{found} faces" in r.getMessage() for r in caplog.records)
    every = toy.embed(multi_face_photo, face="all")
    assert every.shape == (found, 192) and np.allclose(every[0], largest[0], atol=1e-5)
    with pytest.raises(SeveralFacesError, match=f"{found} faces") as info:
        toy.embed([one_face_photo, multi_face_photo], face="error")
    assert info.value.found == found and multi_face_photo.name in str(info.value)
    assert toy.embed(one_face_photo, face="error").shape == (1, 192)  # one face: fine
    results = sorted(toy.iter_faces([one_face_photo, multi_face_photo], face="all"), key=lambda r: r.index)
    assert [r.found for r in results] == [1, found] and results[1].faces == tuple(range(found))
    with pytest.raises(ValueError, match="iter_faces"):
        list(toy.iter_embed([multi_face_photo], face="all"))
    # verify with face="all": the best pair of faces; the photo against itself pairs each face with itself
    cmp = toy.compare(multi_face_photo, multi_face_photo, face="all")
    assert cmp.score == pytest.approx(1.0, abs=1e-5) and cmp.face_a == cmp.face_b
    assert (cmp.found_a, cmp.found_b) == (found, found)
    best = toy.compare(one_face_photo, multi_face_photo, face="all")
    single = toy.embed(one_face_photo)[0]
    assert best.score == pytest.approx(float((every @ single).max()), abs=1e-5)
    assert best.face_b == int(np.argmax(every @ single))
    with pytest.raises(SeveralFacesError):
        toy.verify(one_face_photo, multi_face_photo, face="error")


def test_enroll_and_identify_with_several_faces(toy, multi_face_photo, one_face_photo):
    toy.gallery = toy._new_gallery()
    with pytest.raises(ValueError, match="one face per photo"):
        toy.enroll("group", [multi_face_photo], face="all")
    with pytest.raises(SeveralFacesError):
        toy.enroll("group", [one_face_photo, multi_face_photo], face="error")
    assert len(toy.gallery) == 0  # nothing enrolled from a refused batch
    assert toy.enroll("group", [multi_face_photo]) == 1
    with pytest.raises(SeveralFacesError):
        toy.identify(multi_face_photo, face="error")
    assert toy.identify(multi_face_photo)[0].name == "group"


def test_gallery_folder_is_written_as_enrolments_happen(toy, people, tmp_path):
    folder = tmp_path / "g"
    (first, photos), (second, more) = list(people.items())[:2]
    toy.gallery = toy._new_gallery()
    toy.threshold_source = "default"
    Gallery.open_for(toy, folder, create=True)
    toy.enroll(first, photos[:1])
    other = FaceRecognizer(PixelEmbedder(), detector=toy.detector)
    Gallery.open_for(other, folder)  # a second recognizer (say, another process) sees it at once
    assert other.gallery.names == [first]
    other.enroll(second, more[:1])
    assert toy.gallery.names == [first, second]  # and the first sees the second's enrolment
    assert toy.gallery.path == folder
    toy.gallery.close(), other.gallery.close()


def test_a_photo_result_carries_the_detection_of_each_face(toy, multi_face_photo, one_face_photo, reference):
    """iter_faces, represent and compare say which face they used: box (clipped to the photo), 5 landmarks
    and detection score in the photo's pixels; an aligned crop has the whole crop as its box."""
    want = reference[f"{multi_face_photo.parent.name}/{multi_face_photo.name}"]
    (photo,) = toy.iter_faces([multi_face_photo], face="all")
    assert photo.found == len(photo.detections) == len(want) >= 3
    for det, ref in zip(photo.detections, want):
        assert np.allclose(det.box, np.clip(ref["box"], 0, None), atol=1.0)
        assert np.allclose(det.points, ref["points"], atol=1.0) and det.score == pytest.approx(ref["score"], abs=1e-3)
    faces = toy.represent(multi_face_photo)
    assert [f.face_index for f in faces] == list(range(len(want)))
    assert all(np.array_equal(f.box, d.box) and f.det_score == d.score for f, d in zip(faces, photo.detections))
    assert np.allclose(np.stack([f.embedding for f in faces]), photo.embeddings)
    cmp = toy.compare(one_face_photo, multi_face_photo, face="all")
    assert np.array_equal(cmp.detection_b.box, photo.detections[cmp.face_b].box)
    assert np.array_equal(cmp.detection_a.box, toy.represent(one_face_photo)[0].box)
    crop = toy.align(one_face_photo)[0]
    (aligned,) = toy.represent(crop, aligned=True)
    assert np.array_equal(aligned.box, [0, 0, 112, 112]) and aligned.landmarks is None and aligned.det_score is None
    assert toy.compare(crop, crop, aligned=True).detection_a is None
