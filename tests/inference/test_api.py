"""The top-level Python API (facelivt.verify / represent / find / FaceAnalysis) on real CelebA photos,
with FaceLiVT-S weights trained on CelebA identities other than the ones verified here."""
from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

import facelivt
from facelivt.data.decode import ImageLoadError
from facelivt.errors import FaceLiVTError, InvalidInputError
from facelivt.inference import GalleryMismatchError, InvalidThresholdError, NoFaceError, api
from model_helpers import TRAINED_FACELIVT_S, heldout_identities

CELEBA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "celeba_subset"
MODEL = {"model": "facelivt_s", "weights": TRAINED_FACELIVT_S, "device": "cpu"}


@pytest.fixture(scope="module", autouse=True)
def _fresh_cache():
    """The module-level functions' recognizers are process-wide: start and leave the cache empty."""
    api.clear_cache()
    yield
    api.clear_cache()


@pytest.fixture(scope="module")
def people(reference) -> dict[str, list[Path]]:
    """Six identities the weights never trained on, with three single-face photos each."""
    held = heldout_identities()
    out: dict[str, list[Path]] = {}
    for key in sorted(reference):
        ident = key.split("/")[0]
        if ident in held and len(reference[key]) == 1 and len(out.get(ident, [])) < 3:
            out.setdefault(ident, []).append(CELEBA / key)
    full = [i for i in sorted(out) if len(out[i]) == 3][:6]
    assert len(full) == 6
    return {i: out[i] for i in full}


def _size(path: Path) -> tuple[int, int]:
    with Image.open(path) as img:
        return img.size


def _check_face(face, size: tuple[int, int]) -> None:
    width, height = size
    x1, y1, x2, y2 = face.box
    assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
    assert face.landmarks.shape == (5, 2)
    assert np.all((face.landmarks >= face.box[:2] - 2) & (face.landmarks <= face.box[2:] + 2))
    assert 0 < face.det_score <= 1
    assert face.embedding.shape == (512,) and face.embedding.dtype == np.float32
    assert np.linalg.norm(face.embedding) == pytest.approx(1.0, abs=1e-5)


def test_represent_gives_every_face_with_its_box_landmarks_and_score(multi_face_photo, reference):
    faces = facelivt.represent(multi_face_photo, **MODEL)
    want = reference[f"{multi_face_photo.parent.name}/{multi_face_photo.name}"]
    assert len(faces) == len(want) >= 3
    assert [f.face_index for f in faces] == list(range(len(faces)))
    assert all(f.found == len(want) for f in faces)
    for face, ref in zip(faces, want):
        _check_face(face, _size(multi_face_photo))
        assert np.allclose(face.box, np.clip(ref["box"], 0, None), atol=1.0)
        assert np.allclose(face.landmarks, ref["points"], atol=1.0)
    areas = [(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]) for f in faces]
    assert areas == sorted(areas, reverse=True)
    largest = facelivt.represent(multi_face_photo, face="largest", **MODEL)
    assert len(largest) == 1 and np.allclose(largest[0].embedding, faces[0].embedding, atol=1e-5)
    assert set(faces[0].to_dict()) == {"face_index", "box", "landmarks", "det_score", "embedding"}


def test_represent_of_a_photo_without_a_face_says_so(no_face_photo):
    with pytest.raises(NoFaceError, match="no face"):
        facelivt.represent(no_face_photo, **MODEL)


def test_verify_tells_the_same_person_from_different_people(people):
    ids = list(people)
    same = [facelivt.verify(people[i][0], people[i][1], **MODEL) for i in ids]
    different = [facelivt.verify(people[a][0], people[b][1], **MODEL) for a, b in zip(ids, ids[1:] + ids[:1])]
    assert np.mean([r.score for r in same]) > np.mean([r.score for r in different]) + 0.2
    middle = (np.mean([r.score for r in same]) + np.mean([r.score for r in different])) / 2
    again = facelivt.verify(people[ids[0]][0], people[ids[0]][1], threshold=middle, **MODEL)
    assert again.threshold == middle and again.threshold_source == "given"
    assert again.verified == (again.score >= middle) and again.score == pytest.approx(same[0].score, abs=1e-6)
    for result, (a, b) in zip(same, [(people[i][0], people[i][1]) for i in ids]):
        assert result.verified == (result.score >= result.threshold)
        assert result.model == "facelivt_s" and result.threshold_source
        assert result.found == (1, 1) and result.face_indices == (0, 0)
        for face, photo in zip(result.faces, (a, b)):
            width, height = _size(photo)
            assert 0 <= face.box[0] < face.box[2] <= width and 0 <= face.box[1] < face.box[3] <= height
            assert face.points.shape == (5, 2) and 0 < face.score <= 1
    assert result.to_dict()["faces"][0]["face_index"] == 0


def test_find_searches_a_gallery_per_face(people, tmp_path, multi_face_photo):
    rec = facelivt.FaceRecognizer(MODEL["model"], MODEL["weights"])
    for name, photos in people.items():
        rec.enroll(name, photos[:1])
    top = {name: facelivt.find(photos[2], rec.gallery, k=3, **MODEL) for name, photos in people.items()}
    for hits in top.values():
        assert len(hits) == 1 and len(hits[0].matches) == 3
        scores = [m.score for m in hits[0].matches]
        assert scores == sorted(scores, reverse=True)
        assert all(m.accepted == (m.score >= hits[0].threshold) for m in hits[0].matches)
    assert sum(hits[0].matches[0].name == name for name, hits in top.items()) >= 4  # chance: 1 in 6
    rec.gallery.save(tmp_path / "people", threshold=0.99, threshold_source="calibrated for the test")
    group = facelivt.find(multi_face_photo, tmp_path / "people", k=2, **MODEL)  # a saved gallery's folder
    assert len(group) >= 3 and [g.face.face_index for g in group] == list(range(len(group)))
    assert all(g.threshold == 0.99 and g.threshold_source == "calibrated for the test" for g in group)
    assert all(g.identity is None for g in group)  # nobody reaches 0.99: unknown people
    given = facelivt.find(multi_face_photo, tmp_path / "people", threshold=-0.99, face="largest", **MODEL)
    assert len(given) == 1 and given[0].identity == given[0].matches[0].name and given[0].threshold_source == "given"


def test_find_refuses_a_gallery_of_another_model(people, tmp_path):
    other = facelivt.Gallery(512, metadata={"model": "facelivt_m", "weights_fingerprint": "0" * 16, "flip": True})
    other.enroll_embeddings("someone", np.eye(1, 512, dtype=np.float32))
    with pytest.raises(GalleryMismatchError, match="not comparable"):
        facelivt.find(next(iter(people.values()))[0], other, **MODEL)


def test_face_analysis_get_returns_insightface_style_faces(multi_face_photo, no_face_photo):
    app = facelivt.FaceAnalysis(MODEL["model"], MODEL["weights"], device="cpu")
    faces = app.get(cv2.imread(str(multi_face_photo)))
    assert len(faces) >= 3
    want = facelivt.represent(multi_face_photo, **MODEL)
    for face, ref in zip(faces, want):
        assert face.bbox.dtype == np.float32 and face.bbox.shape == (4,) and np.allclose(face.bbox, ref.box, atol=1e-3)
        assert face.kps.dtype == np.float32 and face.kps.shape == (5, 2) and np.allclose(face.kps, ref.landmarks, atol=1e-3)
        assert face.det_score == pytest.approx(ref.det_score)
        assert np.allclose(face.embedding, ref.embedding, atol=1e-5)
        assert np.linalg.norm(face.normed_embedding) == pytest.approx(1.0, abs=1e-5)
        assert face["bbox"] is face.bbox
    assert faces[0].sim(faces[0]) == pytest.approx(1.0, abs=1e-5)
    assert faces[0].sim(faces[1]) == pytest.approx(float(faces[0].normed_embedding @ faces[1].normed_embedding), abs=1e-6)
    assert len(app.get(str(multi_face_photo), max_num=1)) == 1
    assert app.get(no_face_photo) == []
    app.prepare(ctx_id=-1, det_size=(640, 640))  # insightface's set-up call: -1 is the CPU
    assert app.recognizer.device.type == "cpu" and len(app.get(cv2.imread(str(multi_face_photo)))) == len(faces)


def test_a_photo_as_path_pil_bgr_and_rgb_array_gives_one_embedding(one_face_photo):
    rgb = np.asarray(Image.open(one_face_photo).convert("RGB"))
    bgr = cv2.imread(str(one_face_photo))
    sources = [(one_face_photo, "bgr"), (str(one_face_photo), "rgb"), (Image.open(one_face_photo), "bgr"),
               (bgr, "bgr"), (rgb, "rgb"), (cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA), "bgr"),
               (cv2.cvtColor(bgr, cv2.COLOR_BGR2RGBA), "rgb")]
    emb = [facelivt.represent(s, color=c, face="largest", **MODEL)[0].embedding for s, c in sources]
    for e in emb[1:]:
        assert np.allclose(e, emb[0], atol=1e-5)
    assert np.allclose(facelivt.represent(bgr, face="largest", **MODEL)[0].embedding, emb[0], atol=1e-5)  # arrays: BGR
    swapped = facelivt.represent(bgr, color="rgb", face="largest", **MODEL)  # the same array read the wrong way
    assert not np.allclose(swapped[0].embedding, emb[0], atol=1e-2)
    rec = api.get_recognizer(**MODEL)
    assert np.allclose(rec.embed(rgb)[0], emb[0], atol=1e-5)  # a FaceRecognizer takes RGB arrays by default
    bgr_rec = facelivt.FaceRecognizer(MODEL["model"], MODEL["weights"], color="bgr", detector=rec.detector)
    assert np.allclose(bgr_rec.embed(bgr)[0], emb[0], atol=1e-5)


def test_grey_arrays_need_no_colour_order(one_face_photo):
    grey = cv2.imread(str(one_face_photo), cv2.IMREAD_GRAYSCALE)
    as_bgr = facelivt.represent(grey, color="bgr", face="largest", **MODEL)[0]
    as_rgb = facelivt.represent(grey, color="rgb", face="largest", **MODEL)[0]
    assert np.allclose(as_bgr.embedding, as_rgb.embedding, atol=1e-6)
    assert np.allclose(facelivt.represent(grey[:, :, None], face="largest", **MODEL)[0].embedding, as_bgr.embedding, atol=1e-6)


@pytest.mark.parametrize("array, message", [
    (np.zeros((64, 64, 3), np.float32), "uint8 image array.*float32"),
    (np.zeros((64, 64, 3), np.int64), "uint8 image array.*int64"),
    (np.zeros((64, 64, 2), np.uint8), r"HxW.*shape \(64, 64, 2\)"),
    (np.zeros((64,), np.uint8), r"shape \(64,\)"),
    (np.zeros((0, 64, 3), np.uint8), r"shape \(0, 64, 3\)"),
    (np.zeros((2, 64, 64, 3), np.uint8), r"shape \(2, 64, 64, 3\)"),
])
def test_bad_arrays_are_refused_with_a_clear_message(array, message):
    for color in ("bgr", "rgb"):
        with pytest.raises(ImageLoadError, match=message):
            facelivt.represent(array, color=color, **MODEL)


def test_bad_arguments_are_refused(one_face_photo, tmp_path):
    with pytest.raises(InvalidInputError, match="color must be 'bgr'.*or 'rgb'.*'hsv'"):
        facelivt.represent(one_face_photo, color="hsv", **MODEL)
    with pytest.raises(InvalidInputError, match="color must be"):
        facelivt.FaceAnalysis(MODEL["model"], MODEL["weights"], color="BGR")
    with pytest.raises(InvalidThresholdError, match="threshold"):
        facelivt.verify(one_face_photo, one_face_photo, threshold=1.5, **MODEL)
    with pytest.raises(InvalidInputError, match="face must be one of"):
        facelivt.represent(one_face_photo, face="biggest", **MODEL)
    with pytest.raises(FileNotFoundError, match="image not found"):
        facelivt.verify(tmp_path / "missing.jpg", one_face_photo, **MODEL)
    (tmp_path / "notes.jpg").write_text("not a photo")
    with pytest.raises(ImageLoadError, match="notes.jpg could not be decoded"):
        facelivt.represent(tmp_path / "notes.jpg", **MODEL)
    with pytest.raises(FaceLiVTError, match="gallery"):
        facelivt.find(one_face_photo, tmp_path / "no_gallery_here", **MODEL)
    with pytest.raises(InvalidInputError, match="facelivt_zz"):
        facelivt.represent(one_face_photo, model="facelivt_zz", weights=MODEL["weights"])
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        facelivt.represent(one_face_photo, model="facelivt_s", weights=tmp_path / "missing.safetensors")
    with pytest.raises(InvalidInputError, match="k must be at least 1"):
        facelivt.find(one_face_photo, _one_person_gallery(), k=0, **MODEL)


def _one_person_gallery() -> facelivt.Gallery:
    rec = api.get_recognizer(**MODEL)
    gallery = facelivt.Gallery(rec.embedding_size, metadata=rec.gallery_metadata())
    gallery.enroll_embeddings("someone", np.eye(1, rec.embedding_size, dtype=np.float32))
    return gallery


def test_one_recognizer_is_shared_per_model_weights_and_device(monkeypatch):
    monkeypatch.chdir(TRAINED_FACELIVT_S.parent)
    made = []
    threads = [threading.Thread(target=lambda: made.append(api.get_recognizer(**MODEL))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(made) == 4 and all(r is made[0] for r in made)
    assert api.get_recognizer("facelivt_s", TRAINED_FACELIVT_S.name, "cpu") is made[0]  # the same file, relative
    api.clear_cache()
    assert api.get_recognizer(**MODEL) is not made[0]


def test_detections_refer_to_the_photo_as_given_when_it_is_downscaled(multi_face_photo):
    """A photo larger than the detector's max_side is detected on a smaller copy: boxes and landmarks
    still come back in the photo's own pixels."""
    rec = api.get_recognizer(**MODEL)
    small = facelivt.FaceRecognizer(MODEL["model"], MODEL["weights"],
                                    detector=facelivt.inference.FaceDetector(max_side=200))
    full, reduced = rec.represent(multi_face_photo)[0], small.represent(multi_face_photo)[0]
    assert max(_size(multi_face_photo)) > 200
    assert np.allclose(full.box, reduced.box, atol=8) and np.allclose(full.landmarks, reduced.landmarks, atol=6)
