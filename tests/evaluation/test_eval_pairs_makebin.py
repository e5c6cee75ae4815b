"""Pairs lists (LFW format) and make-bin: parsing, resolving, seeded generation, .bin round trip."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from PIL import Image

from facelivt.cli import main
from facelivt.evaluation import PairSpec, generate_pairs, load_bin, make_bin, parse_pairs, resolve_pairs, write_pairs


def _lfw_like(root):
    """root/<name>/<name>_000N.jpg as in LFW, plus a folder with arbitrary file names."""
    rng = np.random.default_rng(0)
    for name, n in (("Aaron_Peirsol", 3), ("Zico", 2)):
        (root / name).mkdir(parents=True)
        for k in range(1, n + 1):
            arr = rng.integers(0, 256, (60, 50, 3), dtype=np.uint8)
            Image.fromarray(arr).save(root / name / f"{name}_{k:04d}.jpg")
    (root / "misc").mkdir()
    Image.fromarray(rng.integers(0, 256, (40, 40), dtype=np.uint8)).save(root / "misc" / "face_a.png")
    Image.fromarray(rng.integers(0, 256, (40, 40), dtype=np.uint8)).save(root / "misc" / "7.png")
    return root


def test_parse_lfw_format(tmp_path):
    p = tmp_path / "pairs.txt"
    p.write_text("10\t300\nAaron_Peirsol\t1\t2\n# comment\n\nAaron_Peirsol 3 Zico 1\nmisc face_a.png 7\n")
    pairs = parse_pairs(p)
    assert pairs == [
        PairSpec("Aaron_Peirsol", "1", "Aaron_Peirsol", "2"),
        PairSpec("Aaron_Peirsol", "3", "Zico", "1"),
        PairSpec("misc", "face_a.png", "misc", "7"),
    ]
    assert [q.issame for q in pairs] == [True, False, True]
    root = _lfw_like(tmp_path / "imgs")
    files = resolve_pairs(root, pairs)
    assert files[0][0].name == "Aaron_Peirsol_0001.jpg" and files[0][1].name == "Aaron_Peirsol_0002.jpg"
    assert files[1][1].name == "Zico_0001.jpg" and files[1][2] is False
    assert files[2][0].name == "face_a.png" and files[2][1].name == "7.png"


@pytest.mark.parametrize(
    "text,msg",
    [
        ("a 1\n", "2 fields"),  # first line of 2 tokens that are not both numbers
        ("a 1 2 3 4\n", "5 fields"),
        ("a 1 a 2\n", "both names"),
        ("10 300\n", "no pairs"),
    ],
)
def test_parse_errors(tmp_path, text, msg):
    p = tmp_path / "pairs.txt"
    p.write_text(text)
    with pytest.raises(ValueError, match=msg):
        parse_pairs(p)


def test_resolve_errors(tmp_path):
    root = _lfw_like(tmp_path / "imgs")
    with pytest.raises(FileNotFoundError, match="Zico_0009"):
        resolve_pairs(root, [PairSpec("Zico", "9", "Zico", "1")])
    with pytest.raises(FileNotFoundError, match="identity folder"):
        resolve_pairs(root, [PairSpec("Nobody", "1", "Zico", "1")])
    with pytest.raises(ValueError, match="invalid"):
        resolve_pairs(root, [PairSpec("..", "1", "Zico", "1")])
    with pytest.raises(ValueError, match="invalid"):
        resolve_pairs(root, [PairSpec("Zico", "../Zico/Zico_0001.jpg", "Zico", "1")])
    with pytest.raises(FileNotFoundError, match="pairs list"):
        parse_pairs(tmp_path / "none.txt")


def test_generate_pairs_balanced_seeded(shared_data):
    root = shared_data / "orl_faces"
    a = generate_pairs(root, 200, seed=3)
    assert a == generate_pairs(root, 200, seed=3)
    assert a != generate_pairs(root, 200, seed=4)
    assert len(a) == 200 and len({frozenset([(p.name1, p.image1), (p.name2, p.image2)]) for p in a}) == 200
    # LFW layout: 10 folds, each 10 matched then 10 mismatched pairs
    for f in range(10):
        assert [p.issame for p in a[20 * f : 20 * f + 20]] == [True] * 10 + [False] * 10
    for p in a:
        assert (p.name1 == p.name2) == p.issame
        assert (p.image1 != p.image2) or not p.issame
    files = resolve_pairs(root, a)
    assert all(f1 != f2 for f1, f2, _ in files)
    assert files[0][0].parent.name == a[0].name1
    # ORL files are 1.pgm .. 10.pgm: written as LFW-style numbers
    assert all(p.image1.isdigit() and p.image2.isdigit() for p in a)
    with pytest.raises(ValueError, match="multiple of 2 x n_folds"):
        generate_pairs(root, 30, seed=0)
    with pytest.raises(FileNotFoundError):
        generate_pairs(root / "nope", 20)


def test_generate_pairs_capacity(tmp_path):
    root = _lfw_like(tmp_path / "imgs")  # 3 + 1 + 1 = 5 distinct matched pairs
    with pytest.raises(ValueError, match="only 5 distinct matched pairs"):
        generate_pairs(root, 20, seed=0, n_folds=1)
    pairs = generate_pairs(root, 8, seed=0, n_folds=2)
    assert Counter(p.issame for p in pairs) == {True: 4, False: 4}
    files = resolve_pairs(root, pairs)  # tokens (numbers or file names) resolve back
    assert len(files) == 8


def test_make_bin_round_trip_png(tmp_path, shared_data):
    root = shared_data / "orl_faces"
    specs = generate_pairs(root, 20, seed=0)
    pairs_path = write_pairs(tmp_path / "pairs.txt", specs, n_folds=10)
    assert pairs_path.read_text().splitlines()[0] == "10\t1"
    assert parse_pairs(pairs_path) == specs
    out = make_bin(root, pairs_path, tmp_path / "orl.bin", size=112, fmt="png", progress=False)
    images, issame = load_bin(out)
    assert images.shape == (40, 112, 112, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(issame, [p.issame for p in specs])
    for k, (f1, f2, _) in enumerate(resolve_pairs(root, specs)):
        for j, f in enumerate((f1, f2)):
            with Image.open(f) as im:
                assert im.size == (92, 112) and im.mode == "L"  # grey 92x112 originals
                ref = np.asarray(im.convert("RGB").resize((112, 112), Image.BILINEAR))
            np.testing.assert_array_equal(images[2 * k + j], ref)


def test_make_bin_cli_jpg(tmp_path, shared_data, capsys):
    root = shared_data / "orl_faces"
    out = tmp_path / "orl.bin"
    rc = main(["make-bin", str(root), "--out", str(out), "--generate-pairs", "40", "--seed", "5", "--quiet"])
    assert rc == 0
    pairs_path = tmp_path / "orl_pairs.txt"
    assert pairs_path.is_file() and "40 pairs" in capsys.readouterr().out
    images, issame = load_bin(out)
    assert images.shape == (80, 112, 112, 3) and issame.sum() == 20
    # JPEG q95 of the converted, resized image: close to the exact pixels
    specs = parse_pairs(pairs_path)
    f1 = resolve_pairs(root, specs[:1])[0][0]
    with Image.open(f1) as im:
        ref = np.asarray(im.convert("RGB").resize((112, 112), Image.BILINEAR)).astype(float)
    assert np.abs(images[0].astype(float) - ref).mean() < 2.0
    # reading an existing list again gives the same file content
    rc = main(["make-bin", str(root), "--pairs", str(pairs_path), "--out", str(tmp_path / "b.bin"), "--quiet"])
    assert rc == 0 and (tmp_path / "b.bin").read_bytes() == out.read_bytes()
    # generated list never overwrites an existing file; missing --pairs is a clean error
    assert main(["make-bin", str(root), "--out", str(out), "--generate-pairs", "40"]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["make-bin", str(root), "--out", str(out)]) == 2
    assert "--pairs" in capsys.readouterr().err


def test_make_bin_bad_image(tmp_path):
    root = tmp_path / "imgs"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    (root / "a" / "1.jpg").write_bytes(b"not a jpeg")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "a" / "2.jpg")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "b" / "1.jpg")
    with pytest.raises(ValueError, match=r"image .*1\.jpg could not be decoded"):
        make_bin(root, [PairSpec("a", "1", "a", "2")], tmp_path / "x.bin", progress=False)
    with pytest.raises(ValueError, match="unknown image format"):
        make_bin(root, [PairSpec("a", "2", "b", "1")], tmp_path / "x.bin", fmt="gif", progress=False)
