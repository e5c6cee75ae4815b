"""Safe .bin reading: admitted encodings, refused pickles (no code runs), corrupt files, undecodable images."""
from __future__ import annotations

import builtins
import os
import pickle

import cv2
import numpy as np
import pytest

from facelivt.evaluation import UnsafePickleError, load_bin, read_bin, safe_loads, write_bin
from facelivt.evaluation.binset import decode_image


def _png(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", img[..., ::-1] if img.ndim == 3 else img)
    assert ok
    return buf.tobytes()


def _images(n: int, size: int = 112) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]


class Payload:
    """Unpickling this runs ``exec`` and creates ``marker``."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (builtins.exec, (f"open({self.marker!r}, 'w').write('pwned')",))


# ---------------------------------------------------------------------------------------------------------
def test_round_trip(tmp_path):
    imgs = _images(4)
    path = write_bin(tmp_path / "set.bin", [_png(i) for i in imgs], [True, False])
    bs = read_bin(path)
    assert bs.num_pairs == 2 and bs.num_images == 4
    images, issame = load_bin(path)
    assert images.shape == (4, 112, 112, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, np.stack(imgs))
    np.testing.assert_array_equal(issame, [True, False])
    # the file is a plain pickle of (list of bytes, list of bool), as insightface reads it
    with open(path, "rb") as f:
        raw = pickle.load(f, encoding="bytes")
    assert isinstance(raw[0][0], bytes) and raw[1] == [True, False]


@pytest.mark.parametrize("protocol", [3, 4, 5])
def test_python3_protocols_admitted(tmp_path, protocol):
    data = pickle.dumps(([_png(i) for i in _images(2)], [True]), protocol=protocol)
    (tmp_path / "p.bin").write_bytes(data)
    images, issame = load_bin(tmp_path / "p.bin")
    assert images.shape == (2, 112, 112, 3) and issame.tolist() == [True]


def test_python2_style_pickles_admitted():
    # protocol 2 as written by Python 2: str -> SHORT_BINSTRING ('U'), bools NEWTRUE/NEWFALSE, memo BINPUT
    p2 = b"\x80\x02]q\x00(U\x02abq\x01U\x02cdq\x02U\x02efq\x03h\x01e]q\x04(\x88\x89e\x86q\x05."
    assert safe_loads(p2) == ([b"ab", b"cd", b"ef", b"ab"], [True, False])
    # protocol 0 as written by Python 2: STRING ('S'), bools as I01 / I00
    p0 = b"((lp0\nS'ab'\np1\naS'cd'\np2\na(lp3\nI01\natp4\n."
    assert safe_loads(p0) == ([b"ab", b"cd"], [True])
    # protocol 5 bytearray (BYTEARRAY8) is data only: admitted, read as bytes
    p5 = pickle.dumps(([bytearray(b"xy"), bytearray(b"zw")], [False]), protocol=5)
    obj = safe_loads(p5)
    assert obj[0] == [bytearray(b"xy"), bytearray(b"zw")]


@pytest.mark.parametrize("protocol", [0, 2, 4])
@pytest.mark.parametrize("where", ["top", "in_images", "in_labels"])
def test_malicious_pickle_refused_and_no_code_runs(tmp_path, protocol, where):
    marker = tmp_path / f"pwned_{protocol}_{where}"
    payload = Payload(str(marker))
    obj = {
        "top": payload,
        "in_images": ([b"\x89PNG", payload], [True]),
        "in_labels": ([b"a", b"b"], [payload]),
    }[where]
    data = pickle.dumps(obj, protocol=protocol)
    # the payload is real: an ordinary unpickler runs it
    pickle.loads(data)
    assert marker.exists()
    marker.unlink()
    path = tmp_path / "evil.bin"
    path.write_bytes(data)
    with pytest.raises(UnsafePickleError, match=r"refusing to load .*no code of the file was run") as err:
        read_bin(path)
    if protocol >= 3 or where == "top":  # (with protocol < 3 Python 3 bytes are refused first, via _codecs)
        assert "builtin" in str(err.value) and ".exec" in str(err.value)  # __builtin__ with protocol < 3
    assert not marker.exists()
    with pytest.raises(ValueError):  # UnsafePickleError is a ValueError: the CLI prints it cleanly
        load_bin(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "data",
    [
        b"cos\nsystem\n(S'echo hi'\ntR.",  # GLOBAL + REDUCE
        b"(S'echo hi'\nios\nsystem\n.",  # INST
        b"\x80\x02cbuiltins\nobject\n)\x81}b.",  # GLOBAL, NEWOBJ, BUILD
        pickle.dumps(os.system, protocol=4),  # STACK_GLOBAL
        b"\x80\x02)R.",  # REDUCE on its own
        b"\x80\x02])b.",  # BUILD on its own
        b"\x80\x02)\x81.",  # NEWOBJ on its own
        b"(o.",  # OBJ on its own
        b"\x80\x02}.",  # a dict
        b"\x80\x02N.",  # None
        b"\x80\x02\x82\x01.",  # EXT1: the copyreg extension registry
        b"\x80\x02X\x01\x00\x00\x00aQ.",  # BINPERSID
    ],
)
def test_object_building_opcodes_refused(data):
    with pytest.raises(UnsafePickleError, match="refusing"):
        safe_loads(data, "crafted")


def test_numpy_bools_and_py3_low_protocol_bytes_are_refused_with_hints(tmp_path):
    data = pickle.dumps(([b"a", b"b"], [np.bool_(True)]), protocol=4)
    with pytest.raises(UnsafePickleError, match="numpy"):
        safe_loads(data, "np.bin")
    data = pickle.dumps(([b"a", b"b"], [True]), protocol=2)  # Python 3 writes bytes via _codecs.encode
    with pytest.raises(UnsafePickleError, match="_codecs"):
        safe_loads(data, "p2.bin")
    with pytest.raises(UnsafePickleError, match="text string"):
        safe_loads(pickle.dumps((["a", "b"], [True]), protocol=4))
    with pytest.raises(UnsafePickleError, match="integer"):
        safe_loads(b"(I5\nt.")
    with pytest.raises(UnsafePickleError, match="BININT1"):
        safe_loads(pickle.dumps(([b"a", b"b"], [1]), protocol=4))


def test_corrupt_truncated_and_malformed_files(tmp_path):
    good = pickle.dumps(([_png(i) for i in _images(2)], [True]), protocol=4)
    cases = {
        "truncated.bin": (good[: len(good) // 2], "truncated or corrupt"),
        "garbage.bin": (b"\x00\x01\x02 not a pickle at all", "not a pickle file"),  # was "truncated or corrupt"
        "empty.bin": (b"", "empty"),
        "odd.bin": (pickle.dumps(([b"a", b"b", b"c"], [True]), protocol=4), "3 images but 1 pair labels"),
        "single.bin": (pickle.dumps([b"a"], protocol=4), "expected a pair"),
        "nested.bin": (pickle.dumps(([b"a", [b"b"]], [True]), protocol=4), "not encoded image bytes"),
        "labels.bin": (pickle.dumps(([b"a", b"b"], [b"x"]), protocol=4), "not a bool"),
        "nopairs.bin": (pickle.dumps(([], []), protocol=4), "no pairs"),
    }
    for name, (data, msg) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ValueError, match=msg):
            read_bin(tmp_path / name)
    with pytest.raises(FileNotFoundError, match="not found"):
        read_bin(tmp_path / "missing.bin")


def test_undecodable_image_is_named(tmp_path):
    imgs = [_png(i) for i in _images(3)] + [b"this is not an image"]
    path = write_bin(tmp_path / "bad.bin", imgs, [True, False])
    with pytest.raises(ValueError, match=r"image 3 of .*bad\.bin could not be decoded"):
        load_bin(path)


def test_decode_grey_and_resize():
    grey = np.tile(np.arange(92, dtype=np.uint8), (112, 1))  # 92 wide, 112 high
    ok, buf = cv2.imencode(".png", grey)
    out = decode_image(buf.tobytes(), size=112)
    assert out.shape == (112, 112, 3)
    assert (out[..., 0] == out[..., 1]).all()
    assert decode_image(buf.tobytes(), size=None).shape == (112, 92, 3)
    with pytest.raises(ValueError, match="empty"):
        decode_image(b"")


def test_write_bin_validates(tmp_path):
    with pytest.raises(ValueError, match="2 images per pair"):
        write_bin(tmp_path / "x.bin", [b"a"], [True])
    with pytest.raises(ValueError, match="empty"):
        write_bin(tmp_path / "x.bin", [b"a", b""], [True])
    assert not (tmp_path / "x.bin").exists()


def test_safe_loads_refuses_before_any_import(monkeypatch):
    """A refused global is never looked up: no module import happens during a refused load."""
    imported = []
    real_import = builtins.__import__

    def spy(name, *a, **k):
        imported.append(name)
        return real_import(name, *a, **k)

    data = b"cfacelivt_no_such_module\nboom\n(tR."
    monkeypatch.setattr(builtins, "__import__", spy)
    with pytest.raises(UnsafePickleError, match="facelivt_no_such_module.boom"):
        safe_loads(data)
    assert "facelivt_no_such_module" not in imported
