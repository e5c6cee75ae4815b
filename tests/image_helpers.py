"""Images for the decoder tests: huge PNGs that are tiny files (made without the memory their pixels
would need), a real face in every mode Pillow opens, and a CLI run that reports its peak memory."""
from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared"
ALIGNED = SHARED / "data" / "celeba_subset_112"  # real aligned crops, root/<identity>/<image>
FACE = ALIGNED / "7201"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def huge_png(path: Path, width: int, height: int) -> Path:
    """A black 1-bit ``width`` x ``height`` PNG written as a stream: the file is a few hundred kB and
    making it needs a few MB whatever its pixel count (50000 x 50000 in about a second)."""
    row = 1 + (width + 7) // 8  # filter byte + packed bits
    rows_per_block = max(1, (4 << 20) // row)
    block = bytes(row * rows_per_block)
    comp = zlib.compressobj(6)
    parts = []
    for start in range(0, height, rows_per_block):
        parts.append(comp.compress(block[: row * min(rows_per_block, height - start)]))
    parts.append(comp.flush())
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", b"".join(parts)) + _chunk(b"IEND", b""))
    return path


def face_rgb(index: int = 0) -> np.ndarray:
    """A real aligned 112x112 face (../shared/data/celeba_subset_112) as uint8 RGB."""
    files = sorted(FACE.glob("*.jpg"))
    if not files:
        raise FileNotFoundError(f"shared test data missing: {FACE}")
    with Image.open(files[index]) as im:
        return np.asarray(im.convert("RGB"))


def alpha_ramp(shape: tuple[int, int]) -> np.ndarray:
    """An alpha plane from fully transparent (left) to opaque (right)."""
    return np.tile(np.linspace(0, 255, shape[1]).round().astype(np.uint8), (shape[0], 1))


def write_mode_samples(folder: Path) -> dict[str, str]:
    """The same face in every mode Pillow opens, each in a format that keeps the mode; file name ->
    the mode Pillow must report when opening it."""
    folder.mkdir(parents=True, exist_ok=True)
    rgb = face_rgb()
    grey = np.asarray(Image.fromarray(rgb).convert("L"))
    ramp = alpha_ramp(grey.shape)
    pil = Image.fromarray(rgb)
    paletted = pil.convert("P")
    paletted.info["transparency"] = int(np.asarray(paletted)[0, 0])
    saves = {
        "a_1.png": ("1", lambda p: pil.convert("1").save(p)),
        "b_L.png": ("L", lambda p: Image.fromarray(grey).save(p)),
        "c_L.jpg": ("L", lambda p: Image.fromarray(grey).save(p, quality=95)),
        "d_LA.png": ("LA", lambda p: Image.fromarray(np.dstack([grey, ramp]), "LA").save(p)),
        "e_P.png": ("P", lambda p: pil.convert("P").save(p)),
        "f_P_transparent.png": ("P", lambda p: paletted.save(p, transparency=paletted.info["transparency"])),
        "g_RGB.png": ("RGB", lambda p: pil.save(p)),
        "h_RGB.jpg": ("RGB", lambda p: pil.save(p, quality=95)),
        "i_RGBA.png": ("RGBA", lambda p: Image.fromarray(np.dstack([rgb, ramp]), "RGBA").save(p)),
        "j_CMYK.tif": ("CMYK", lambda p: pil.convert("CMYK").save(p)),
        "k_I16.png": ("I;16", lambda p: Image.fromarray(grey.astype(np.uint16) * 257).save(p)),
        "l_I16B.tif": ("I;16B", lambda p: Image.fromarray((grey.astype(np.uint16) * 257).astype(">u2")).save(p)),
        "m_I.tif": ("I", lambda p: Image.fromarray(grey.astype(np.int32) * 257).save(p)),
        "n_F.tif": ("F", lambda p: Image.fromarray(grey.astype(np.float32) / 255).save(p)),
        # 16 bits per channel: Pillow cannot write it, OpenCV can (Pillow opens it as RGB)
        "o_RGB48.png": ("RGB", lambda p: cv2.imwrite(str(p), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR).astype(np.uint16) * 257)),
    }
    modes = {}
    for name, (mode, save) in saves.items():
        save(folder / name)
        modes[name] = mode
    return modes


_PEAK = ("import atexit, resource, runpy, sys\n"
         "atexit.register(lambda: sys.stderr.write('\\npeak_rss_kb=%d\\n' % resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))\n"
         "sys.argv = ['facelivt'] + sys.argv[1:]\n"
         "runpy.run_module('facelivt', run_name='__main__')\n")


def run_cli_peak(*args: str, env: dict | None = None, timeout: float = 300) -> tuple[subprocess.CompletedProcess, float]:
    """``facelivt ARGS`` in a fresh process; the completed process and its peak resident memory in MB."""
    proc = subprocess.run([sys.executable, "-c", _PEAK, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})
    marks = [line for line in proc.stderr.splitlines() if line.startswith("peak_rss_kb=")]
    assert marks, proc.stderr[-3000:]
    return proc, int(marks[-1].split("=")[1]) / 1024
