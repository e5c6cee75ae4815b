"""IJB-B/C 1:1 verification on a small IJB-shaped release built from ../shared/data/celeba_subset."""
from __future__ import annotations

import json
import shutil
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest

from facelivt.cli import main
from facelivt.evaluation import ijb_scores, read_ijb_meta, score_template_pairs, template_features
from facelivt.evaluation.ijb import evaluate_scores, load_aligned
from facelivt.models.embed import embed_images

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
N_IDS, PER_ID = 6, 4


def build_ijb(root: Path, name: str = "IJBC") -> dict:
    """Write root/loose_crop/<k>.jpg and root/meta/<name>_{name_5pts_score,face_tid_mid,template_pair_label}.txt
    as the real release lays them out. Identity i gives template 2i+1 (images 0, 1 of one media: a video's
    frames) and template 2i+2 (images 2, 3, two medias); every template pair is listed."""
    dets = json.loads((SHARED / "reference" / "celeba_subset_mtcnn.json").read_text())
    by_id = defaultdict(list)
    for key in sorted(dets):
        if len(dets[key]) == 1 and (SHARED / "data" / "celeba_subset_112" / key).is_file():
            by_id[key.split("/")[0]].append(key)
    ids = [i for i in sorted(by_id) if len(by_id[i]) >= PER_ID][:N_IDS]
    (root / "loose_crop").mkdir(parents=True)
    (root / "meta").mkdir()
    lm_lines, tm_lines, keys, tids = [], [], [], []
    k = 0
    for i, ident in enumerate(ids):
        for j, key in enumerate(by_id[ident][:PER_ID]):
            k += 1
            fname = f"{k}.jpg"
            shutil.copyfile(SHARED / "data" / "celeba_subset" / key, root / "loose_crop" / fname)
            det = dets[key][0]
            pts = " ".join(f"{v:.2f}" for p in det["points"] for v in p)
            lm_lines.append(f"{fname} {pts} {det['score']:.6f}")
            tid = 2 * i + 1 + (j >= 2)
            mid = 1000 + 10 * i + (0 if j < 2 else j)
            tm_lines.append(f"{fname} {tid} {mid}")
            keys.append(key)
            tids.append(tid)
    p = name.lower()
    (root / "meta" / f"{p}_name_5pts_score.txt").write_text("\n".join(lm_lines) + "\n")
    (root / "meta" / f"{p}_face_tid_mid.txt").write_text("\n".join(tm_lines) + "\n")
    n_t = 2 * len(ids)
    pairs = [(a, b, int((a - 1) // 2 == (b - 1) // 2)) for a in range(1, n_t + 1) for b in range(a + 1, n_t + 1)]
    (root / "meta" / f"{p}_template_pair_label.txt").write_text("\n".join(f"{a} {b} {l}" for a, b, l in pairs) + "\n")
    return {"keys": keys, "n_templates": n_t, "pairs": pairs}


@pytest.fixture(scope="module")
def ijb(tmp_path_factory):
    root = tmp_path_factory.mktemp("ijb") / "IJBC"
    info = build_ijb(root)
    return root, info


def reference_template_features(feats, templates, medias):
    """insightface image2template_feature, written out with loops."""
    out = {}
    for t in sorted(set(templates.tolist())):
        idx = [i for i in range(len(templates)) if templates[i] == t]
        total = np.zeros(feats.shape[1])
        for m in sorted(set(medias[idx].tolist())):
            members = [i for i in idx if medias[i] == m]
            total += np.mean([feats[i] for i in members], axis=0)
        out[t] = total / np.linalg.norm(total)
    return out


def test_meta_is_read(ijb):
    root, info = ijb
    meta = read_ijb_meta(root, "IJBC")
    assert len(meta.names) == N_IDS * PER_ID and meta.names[0] == "1.jpg"
    assert meta.landmarks.shape == (N_IDS * PER_ID, 5, 2)
    assert len(np.unique(meta.templates)) == info["n_templates"]
    assert meta.pairs.shape == (len(info["pairs"]), 2)
    assert meta.labels.sum() == N_IDS
    assert (meta.scores > 0.9).all()


def test_alignment_uses_landmarks_as_the_reference_crops(ijb):
    """Aligned loose crops match the MTCNN-aligned celeba_subset_112 photos; crops of other photos do not."""
    root, info = ijb
    meta = read_ijb_meta(root, "IJBC")
    same, other = [], []
    for i, key in enumerate(info["keys"]):
        crop = load_aligned(meta, i).astype(float)
        assert crop.shape == (112, 112, 3)
        ref = cv2.cvtColor(cv2.imread(str(SHARED / "data" / "celeba_subset_112" / key)), cv2.COLOR_BGR2RGB).astype(float)
        same.append(np.abs(crop - ref).mean())
        other_key = info["keys"][(i + PER_ID) % len(info["keys"])]
        ref2 = cv2.cvtColor(cv2.imread(str(SHARED / "data" / "celeba_subset_112" / other_key)), cv2.COLOR_BGR2RGB)
        other.append(np.abs(crop - ref2.astype(float)).mean())
    assert np.median(same) < 5.0
    assert np.median(other) > 4 * np.median(same)


@pytest.mark.parametrize("normalize_images", [False, True])
def test_template_pooling_matches_loops(normalize_images):
    rng = np.random.default_rng(0)
    n = 60
    feats = rng.normal(size=(n, 8))
    templates = rng.integers(1, 8, n) * 7  # non-contiguous ids
    medias = rng.integers(0, 5, n) + 100 * (templates % 3)  # medias shared across templates too
    scores = rng.uniform(0.5, 1.0, n)
    tids, tf = template_features(feats, templates, medias, detector_scores=scores, normalize_images=normalize_images)
    base = feats / np.linalg.norm(feats, axis=1, keepdims=True) if normalize_images else feats
    ref = reference_template_features(base * scores[:, None], templates, medias)
    assert tids.tolist() == sorted(ref)
    for t, f in zip(tids, tf):
        np.testing.assert_allclose(f, ref[t], atol=1e-12)
    pairs = np.array([[tids[0], tids[1]], [tids[2], tids[2]]])
    s = score_template_pairs(tids, tf, pairs)
    assert s[0] == pytest.approx(float(ref[tids[0]] @ ref[tids[1]]))
    assert s[1] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="unknown template"):
        score_template_pairs(tids, tf, np.array([[tids[0], 999]]))
    with pytest.raises(ValueError, match="one template and media id per image"):
        template_features(feats, templates[:-1], medias)


def test_ijb_scores_match_a_manual_pipeline(ijb, tiny_model):
    root, info = ijb
    scores, labels, meta = ijb_scores(tiny_model, root, "IJBC", batch_size=5, device="cpu", workers=2, progress=False)
    crops = np.stack([load_aligned(meta, i) for i in range(len(meta.names))])
    feats = embed_images(tiny_model, crops, batch_size=64, device="cpu", progress=False)
    ref = reference_template_features(feats.astype(np.float64) * meta.scores[:, None], meta.templates, meta.medias)
    manual = np.array([ref[a] @ ref[b] for a, b, _ in info["pairs"]])
    np.testing.assert_allclose(scores, manual, atol=1e-6)
    np.testing.assert_array_equal(labels, [bool(l) for _, _, l in info["pairs"]])
    res = evaluate_scores(scores, labels)
    assert res["n_pairs"] == len(info["pairs"]) and res["n_negative"] == len(info["pairs"]) - N_IDS
    assert list(res["tar_at_far"]) == ["1e-1"]  # 60 impostor pairs support FAR >= 1/60 only
    assert 0.0 <= res["auc"] <= 1.0


def _copy_meta(root: Path, dst: Path) -> Path:
    shutil.copytree(root / "meta", dst / "meta")
    (dst / "loose_crop").symlink_to(root / "loose_crop")
    return dst


def test_meta_errors(ijb, tmp_path):
    root, _ = ijb
    d = _copy_meta(root, tmp_path / "A")
    tm = d / "meta" / "ijbc_face_tid_mid.txt"
    lines = tm.read_text().splitlines()
    tm.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(ValueError, match="same images in the same order"):
        read_ijb_meta(d, "IJBC")
    tm.write_text("\n".join([lines[1], lines[0]] + lines[2:]) + "\n")
    with pytest.raises(ValueError, match="row 1 of"):
        read_ijb_meta(d, "IJBC")
    tm.write_text("\n".join(lines) + "\n")
    pl = d / "meta" / "ijbc_template_pair_label.txt"
    good = pl.read_text()
    pl.write_text(good + "1 999 0\n")
    with pytest.raises(ValueError, match="no image"):
        read_ijb_meta(d, "IJBC")
    pl.write_text(good + "1 2 7\n")
    with pytest.raises(ValueError, match="labels must be 0 or 1"):
        read_ijb_meta(d, "IJBC")
    pl.write_text(good + "1 2\n")
    with pytest.raises(ValueError, match="template 1"):
        read_ijb_meta(d, "IJBC")
    pl.write_text(good)
    lm = d / "meta" / "ijbc_name_5pts_score.txt"
    lm_lines = lm.read_text().splitlines()
    lm.write_text("\n".join([" ".join(lm_lines[0].split()[:-1])] + lm_lines[1:]) + "\n")
    with pytest.raises(ValueError, match="12 fields"):
        read_ijb_meta(d, "IJBC")
    with pytest.raises(FileNotFoundError, match="ijbb_name_5pts_score"):
        read_ijb_meta(d, "IJBB")
    with pytest.raises(FileNotFoundError, match="IJB folder"):
        read_ijb_meta(tmp_path / "none")


def test_missing_image_is_named(ijb, tmp_path, tiny_model):
    root, _ = ijb
    d = tmp_path / "B"
    shutil.copytree(root, d)
    (d / "loose_crop" / "3.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"loose_crop/3\.jpg"):
        ijb_scores(tiny_model, d, "IJBC", batch_size=4, device="cpu", progress=False)


def test_eval_cli_on_ijb(ijb, tmp_path, capsys):
    """`facelivt eval --ijb DIR --ijb-name IJBC` with an untrained facelivt_s (deploy form, CPU)."""
    root, info = ijb
    out = tmp_path / "eval"
    rc = main(["eval", "--model", "facelivt_s", "--ijb", str(root), "--ijb-name", "IJBC", "--out", str(out),
               "--batch-size", "12", "--device", "cpu", "--quiet"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "randomly initialised" in captured.err
    res = json.loads((out / "results.json").read_text())["sets"]
    assert set(res) == {"IJBC"}
    assert res["IJBC"]["n_templates"] == info["n_templates"] and res["IJBC"]["tar_at_far_method"] == "nearest"
    assert set(res["IJBC"]["tar_at_far"]) == {"1e-1"}
    assert (out / "IJBC_roc.png").stat().st_size > 1000
    assert "IJBC" in captured.out and "TAR@1e-1" in captured.out
