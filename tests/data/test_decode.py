"""The one image decoder (facelivt/data/decode.py) and the paths that read images through it: photos
(inference), image folders, pack, RecordIO records, make-bin and .bin pairs give the same pixels for
every mode Pillow opens, composite transparency over white, and refuse images above the pixel limit
from their header, before decoding them."""
from __future__ import annotations

import logging

import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from log_helpers import logs_warning
from PIL import Image

from facelivt.data import ImageFolderDataset, RecordIODataset, RecordIOWriter, pack_header, pack_image_folder
from facelivt.data.decode import (
    DEFAULT_MAX_PIXELS,
    MAX_PIXELS_ENV,
    ImageLoadError,
    ImageTooLargeError,
    check_color,
    decode,
    decode_rgb,
    max_pixels_limit,
    rgb_order,
)
from facelivt.data.folder import load_image as folder_image
from facelivt.errors import InvalidInputError
from facelivt.evaluation.binset import read_bin, write_bin
from facelivt.evaluation.makebin import make_bin
from facelivt.evaluation.pairs import PairSpec
from facelivt.inference.images import load_image as photo_image
from image_helpers import alpha_ramp, face_rgb, huge_png, write_mode_samples


def write_raw_rec(out: Path, payloads: list[bytes]) -> Path:
    """A RecordIO set whose records hold the given encoded files as they are (label = position)."""
    out.mkdir(parents=True, exist_ok=True)
    with RecordIOWriter(out / "train.rec", out / "train.idx") as writer:
        for key, data in enumerate(payloads, start=1):
            writer.write(key, pack_header(float(key - 1)) + data)
    return out


def every_path(root: Path, names: list[str], tmp: Path) -> dict[str, list[np.ndarray]]:
    """Each file of ``root/x/`` (one identity folder) as every path of the project reads it, in order."""
    files = [root / "x" / n for n in names]
    raw = [f.read_bytes() for f in files]
    folder = ImageFolderDataset(root)
    assert [Path(p).name for p, _ in folder.samples] == names
    pack_image_folder(root, tmp / "packed", png=True)  # lossless, so the pixels can be compared exactly
    packed = RecordIODataset(tmp / "packed")
    records = RecordIODataset(write_raw_rec(tmp / "raw_rec", raw))
    pairs = [PairSpec("x", n, "x", n) for n in names]
    made = read_bin(make_bin(root, pairs, tmp / "made.bin", size=112, fmt="png", progress=False))
    stored = read_bin(write_bin(tmp / "raw.bin", [b for b in raw for _ in range(2)], [True] * len(raw)))
    return {
        "folder file": [folder_image(f) for f in files],
        "folder data set": [folder.load(i)[0] for i in range(len(files))],
        "pack": [packed.load(i)[0] for i in range(len(files))],
        "RecordIO record": [records.load(i)[0] for i in range(len(files))],
        "make-bin": [made.decode(2 * i) for i in range(len(files))],
        ".bin pair": [stored.decode(2 * i) for i in range(len(files))],
    }


def test_every_mode_gives_the_photo_pixels_on_every_path(tmp_path):
    modes = write_mode_samples(tmp_path / "faces" / "x")
    names = sorted(modes)
    for name in names:
        with Image.open(tmp_path / "faces" / "x" / name) as im:
            assert im.mode == modes[name], name  # the sample really is in that mode
    reference = [photo_image(tmp_path / "faces" / "x" / n) for n in names]
    for path, images in every_path(tmp_path / "faces", names, tmp_path).items():
        for name, ref, got in zip(names, reference, images):
            assert got.shape == (112, 112, 3) and got.dtype == np.uint8, (path, name)
            assert np.array_equal(got, ref), f"{path} reads {name} ({modes[name]}) differently from a photo"


def test_deep_grey_is_scaled_not_saturated(tmp_path):
    """16-bit and 32-bit grey, float grey and 16-bit RGB decode to the 8-bit face, not a white image."""
    write_mode_samples(tmp_path)
    rgb = face_rgb()
    grey = np.asarray(Image.fromarray(rgb).convert("L")).astype(int)
    for name in ("k_I16.png", "l_I16B.tif", "m_I.tif", "n_F.tif"):
        img = decode_rgb(tmp_path / name).astype(int)
        assert np.abs(img - grey[..., None]).max() <= 1, (name, img.mean(), grey.mean())
    assert np.abs(decode_rgb(tmp_path / "o_RGB48.png").astype(int) - rgb).max() <= 1


def test_transparency_is_composited_over_white(tmp_path):
    rgb = face_rgb()
    hidden = np.random.default_rng(0).integers(0, 256, rgb.shape, dtype=np.uint8)
    Image.fromarray(np.dstack([hidden, np.zeros(rgb.shape[:2], np.uint8)]), "RGBA").save(tmp_path / "clear.png")
    assert np.all(decode_rgb(tmp_path / "clear.png") == 255)  # fully transparent: white, whatever is hidden
    ramp = alpha_ramp(rgb.shape[:2])
    Image.fromarray(np.dstack([rgb, ramp]), "RGBA").save(tmp_path / "ramp.png")
    a = ramp[..., None] / 255.0
    assert np.abs(decode_rgb(tmp_path / "ramp.png") - (rgb * a + 255 * (1 - a))).max() <= 1
    keyed = Image.fromarray(rgb)
    keyed.save(tmp_path / "key.png", transparency=tuple(int(v) for v in rgb[0, 0]))  # an RGB colour key (tRNS)
    img = decode_rgb(tmp_path / "key.png")
    key = (rgb == rgb[0, 0]).all(axis=2)
    assert np.all(img[key] == 255) and np.array_equal(img[~key], rgb[~key])


def test_a_transparent_face_is_white_on_every_path(tmp_path):
    """A mostly transparent RGBA face: the transparent part is white on every path (it was the hidden
    colour, alpha dropped, on the data paths)."""
    rgb = face_rgb()
    alpha = np.zeros(rgb.shape[:2], np.uint8)
    alpha[40:70, 40:70] = 255  # an opaque patch in a transparent image
    folder = tmp_path / "faces" / "x"
    folder.mkdir(parents=True)
    Image.fromarray(np.dstack([rgb, np.zeros_like(alpha)]), "RGBA").save(folder / "clear.png")  # fully transparent
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(folder / "patch.png")
    for path, (clear, patch) in every_path(tmp_path / "faces", ["clear.png", "patch.png"], tmp_path).items():
        assert np.all(clear == 255), path
        assert np.all(patch[alpha == 0] == 255) and np.array_equal(patch[alpha == 255], rgb[alpha == 255]), path


def test_plain_jpeg_pixels_match_pillow(tmp_path):
    """8-bit JPEGs take OpenCV's faster decode: the pixels are Pillow's, from a file and from bytes."""
    files = sorted((Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "celeba_subset").rglob("*.jpg"))[:20]
    Image.fromarray(face_rgb()).convert("L").save(tmp_path / "grey.jpg", quality=90)
    for f in files + [tmp_path / "grey.jpg"]:
        with Image.open(f) as im:
            ref = np.asarray(im.convert("RGB"))
        assert np.array_equal(decode_rgb(f), ref), f
        assert np.array_equal(decode_rgb(f.read_bytes()), ref), f
    assert len(files) == 20


def test_pixel_limit_setting(monkeypatch):
    monkeypatch.delenv(MAX_PIXELS_ENV, raising=False)
    assert max_pixels_limit() == DEFAULT_MAX_PIXELS == 80_000_000
    assert max_pixels_limit(1000) == 1000
    monkeypatch.setenv(MAX_PIXELS_ENV, "12_000")
    assert max_pixels_limit() == 12_000 and max_pixels_limit(50) == 50
    small = Image.new("RGB", (100, 100))
    assert decode(small).image.shape == (100, 100, 3)
    with pytest.raises(ImageTooLargeError, match=r"112x112 = 12544 pixels exceeds the limit of 12000 pixels \(\$FACELIVT_MAX_PIXELS"):
        decode_rgb(Image.fromarray(face_rgb()))
    for bad in ("0", "-5", "lots", "1e6"):
        monkeypatch.setenv(MAX_PIXELS_ENV, bad)
        with pytest.raises(ValueError, match=MAX_PIXELS_ENV):
            decode(small)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="max_pixels"):
            max_pixels_limit(bad)


@pytest.fixture(scope="module")
def bombs(tmp_path_factory) -> dict[str, Path]:
    """A 50000 x 50000 PNG (2.5 GP: Pillow refuses to open it) and a 12000 x 12000 one (144 MP: Pillow
    only warns, then decodes it) - tiny files."""
    d = tmp_path_factory.mktemp("bombs")
    return {"bomb": huge_png(d / "bomb.png", 50_000, 50_000), "big": huge_png(d / "big.png", 12_000, 12_000)}


@pytest.mark.parametrize("which", ["bomb", "big"])
def test_huge_images_are_refused_from_the_header(bombs, which):
    path = bombs[which]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning either
        for source in (path, path.read_bytes()):
            start = time.perf_counter()
            with pytest.raises(ImageTooLargeError, match="limit of 80.0 MP"):
                decode(source)
            assert time.perf_counter() - start < 1.0  # the header only: decoding would take many seconds


def test_huge_images_are_skipped_or_refused_on_every_path(bombs, tmp_path, caplog):
    """Folders and RecordIO skip them as bad samples; make-bin and a .bin pair refuse them with one error."""
    root = tmp_path / "faces"
    (root / "x").mkdir(parents=True)
    Image.fromarray(face_rgb()).save(root / "x" / "a.png")
    for name, path in bombs.items():
        (root / "x" / f"{name}.png").symlink_to(path)
    folder = ImageFolderDataset(root, max_bad_fraction=1.0)
    with caplog.at_level(logging.WARNING, logger="facelivt"):
        caplog.clear()
        _, label = folder[1]  # a.png, big.png, bomb.png: big is skipped, bomb too, then a.png
    assert label == 0 and folder.bad_records == 2
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "big.png: 12000x12000 = 144.0 MP exceeds the limit of 80.0 MP" in said
    assert "bomb.png: too large to decode safely, above the limit of 80.0 MP" in said
    with logs_warning(caplog, "skipping unreadable image"):
        stats = pack_image_folder(root, tmp_path / "packed")
    assert stats["num_images"] == 1 and stats["skipped"] == 2
    records = RecordIODataset(write_raw_rec(tmp_path / "rec", [p.read_bytes() for p in bombs.values()] + [(root / "x" / "a.png").read_bytes()]),
                              max_bad_fraction=1.0)
    with caplog.at_level(logging.WARNING, logger="facelivt"):
        caplog.clear()
        x, label = records[0]
    assert [r.getMessage().split(": ")[1] for r in caplog.records] == ["skipping bad sample key 1", "skipping bad sample key 2"]
    assert label == 2 and records.bad_records == 2
    for name in bombs:
        with pytest.raises(ImageTooLargeError, match=f"{name}\\.png"):
            make_bin(root, [PairSpec("x", "a.png", "x", f"{name}.png")], tmp_path / "x.bin", progress=False)
        bin_set = read_bin(write_bin(tmp_path / f"{name}.bin", [bombs[name].read_bytes()] * 2, [True]))
        with pytest.raises(ImageTooLargeError, match=r"image 0 of .*(too large|exceeds the limit)"):
            bin_set.decode(0)
    assert not (tmp_path / "x.bin").exists()


def test_unusable_inputs_name_the_image(tmp_path):
    with pytest.raises(ImageLoadError, match="record 7 could not be decoded: not an image"):
        decode(b"not an image at all", name="record 7")
    with pytest.raises(ImageLoadError, match="empty"):
        decode(b"")
    Image.fromarray(face_rgb()).save(tmp_path / "whole.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "whole.png").read_bytes()[:3000])
    with pytest.raises(ImageLoadError, match=r"cut\.png could not be decoded \(corrupt or truncated"):
        decode(tmp_path / "cut.png")
    with pytest.raises(FileNotFoundError, match="not found"):
        decode(tmp_path / "gone.png")


def test_bgr_arrays_are_put_in_rgb_order_and_other_sources_are_left_alone(tmp_path):
    """``rgb_order``: a BGR (BGRA) array becomes RGB (RGBA) and decodes as the same photo; RGB arrays, grey
    arrays, paths, bytes and PIL images are returned as they are."""
    rgb = face_rgb()
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    assert np.array_equal(decode_rgb(rgb_order(bgr, "bgr")), rgb)
    bgra = np.concatenate([bgr, np.full(bgr.shape[:2] + (1,), 255, np.uint8)], axis=2)
    assert np.array_equal(decode_rgb(rgb_order(bgra, "bgr")), rgb)
    grey = rgb[:, :, 0].copy()
    path = tmp_path / "face.png"
    Image.fromarray(rgb).save(path)
    pil = Image.open(path)
    for source in (rgb, grey, path, str(path), path.read_bytes(), pil):
        assert rgb_order(source, "rgb") is source
    for source in (grey, path, pil):
        assert rgb_order(source, "bgr") is source
    assert check_color("bgr") == "bgr" and check_color("rgb") == "rgb"


@pytest.mark.parametrize("color", ["BGR", "hsv", "", None])
def test_an_unknown_colour_order_is_refused(color):
    with pytest.raises(InvalidInputError, match="color must be 'bgr'"):
        rgb_order(face_rgb(), color)


def test_a_float_array_is_refused_with_what_to_do():
    for color in ("bgr", "rgb"):
        with pytest.raises(ImageLoadError, match=r"uint8 image array \(0..255\), got dtype float64; convert it first"):
            decode_rgb(rgb_order(face_rgb() / 255.0, color))
