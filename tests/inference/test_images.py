"""Robust image loading: every mode becomes RGB, EXIF rotation applies, bad files give clear errors."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from facelivt.inference import ImageLoadError, ImageTooLargeError
from facelivt.inference.images import is_image_file, load_image, open_image

from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
CELEBA = DATA / "celeba_subset"


@pytest.fixture(scope="module")
def photo(one_face_photo) -> np.ndarray:
    return np.array(Image.open(one_face_photo).convert("RGB"))


def test_plain_rgb_path_and_bytes(one_face_photo, photo):
    img = load_image(one_face_photo)
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    assert np.array_equal(img, photo)
    assert np.array_equal(load_image(one_face_photo.read_bytes()), photo)
    assert np.array_equal(load_image(Image.open(one_face_photo)), photo)
    assert is_image_file(one_face_photo) and not is_image_file("notes.txt")


def test_grayscale_sets_become_rgb():
    for path in (next((DATA / "orl_faces").rglob("*.pgm")), next((DATA / "yalefaces").rglob("*.gif")),
                 next((DATA / "extended_yaleb_cropped").rglob("*.png"))):
        img = load_image(path)
        assert img.ndim == 3 and img.shape[2] == 3, path
        assert np.array_equal(img[..., 0], img[..., 1]) and np.array_equal(img[..., 1], img[..., 2]), path


def test_rgba_is_composited_over_white(tmp_path, photo):
    rgba = np.dstack([photo, np.full(photo.shape[:2], 255, np.uint8)])
    rgba[:10, :10, 3] = 0  # transparent corner
    path = tmp_path / "a.png"
    Image.fromarray(rgba, "RGBA").save(path)
    img = load_image(path)
    assert np.all(img[:10, :10] == 255)
    assert np.array_equal(img[20:, 20:], photo[20:, 20:])
    assert np.array_equal(load_image(rgba), img)  # RGBA arrays too


def test_cmyk_jpeg(tmp_path, photo):
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(photo).convert("CMYK").save(path, quality=95)
    assert Image.open(path).mode == "CMYK"
    img = load_image(path)
    assert img.shape == photo.shape
    assert np.abs(img.astype(int) - photo.astype(int)).mean() < 6


def test_sixteen_bit_grey(tmp_path, photo):
    grey = np.array(Image.fromarray(photo).convert("L"))
    path = tmp_path / "g16.png"
    Image.fromarray(grey.astype(np.uint16) * 257).save(path)
    assert Image.open(path).mode.startswith("I")
    img = load_image(path)
    assert np.abs(img[..., 0].astype(int) - grey.astype(int)).max() <= 1


def test_exif_rotation_is_applied(tmp_path, photo):
    # Store the photo rotated on its side with an EXIF tag saying "rotate 90 CW to display"
    stored = Image.fromarray(photo).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rot.jpg"
    stored.save(path, exif=exif, quality=95)
    loaded = open_image(path)
    assert loaded.image.shape == photo.shape
    assert loaded.original_size == (photo.shape[1], photo.shape[0])
    assert np.abs(loaded.image.astype(int) - photo.astype(int)).mean() < 4


def test_truncated_file(tmp_path, one_face_photo):
    path = tmp_path / "cut.jpg"
    path.write_bytes(one_face_photo.read_bytes()[:2000])
    with pytest.raises(ImageLoadError, match="truncated"):
        load_image(path)


@pytest.mark.parametrize("content", [b"hello, not an image\n", b"", b"\x89PNG\r\n\x1a\n garbage"])
def test_non_image_files(tmp_path, content):
    path = tmp_path / "x.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageLoadError, match="x.jpg"):
        load_image(path)
    assert issubclass(ImageLoadError, ValueError)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageLoadError, match="folder"):
        load_image(tmp_path)


def test_huge_images_refused_before_decoding(tmp_path):
    path = tmp_path / "huge.png"
    Image.new("1", (10_000, 9_000)).save(path)  # 90 MP, a tiny file
    with pytest.raises(ImageTooLargeError, match="90.0 MP exceeds"):
        load_image(path)
    with pytest.raises(ImageTooLargeError):
        load_image(DATA / "orl_faces" / "s1" / "1.pgm", max_pixels=1000)


def test_large_images_downscaled(tmp_path, photo):
    big = np.array(Image.fromarray(photo).resize((photo.shape[1] * 4, photo.shape[0] * 4)))
    loaded = open_image(big, max_side=500)
    assert max(loaded.image.shape[:2]) == 500 and loaded.downscaled
    assert loaded.scale == pytest.approx(500 / max(big.shape[:2]), rel=1e-3)
    path = tmp_path / "big.jpg"
    Image.fromarray(big).save(path)
    assert max(open_image(path, max_side=300).image.shape[:2]) == 300  # JPEG draft path


def test_bad_arrays():
    with pytest.raises(ImageLoadError, match="uint8"):
        load_image(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(ImageLoadError, match="shape"):
        load_image(np.zeros((10, 10, 2), np.uint8))
    with pytest.raises(ImageLoadError, match="shape"):
        load_image(np.zeros((0, 10, 3), np.uint8))
    assert load_image(np.zeros((7, 9), np.uint8)).shape == (7, 9, 3)


def test_animated_gif_first_frame(tmp_path):
    frames = [Image.new("RGB", (32, 32), c) for c in ((255, 0, 0), (0, 255, 0))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    img = load_image(path)
    assert tuple(img[0, 0]) == (255, 0, 0)
