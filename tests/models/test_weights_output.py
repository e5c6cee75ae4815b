"""save_weights creates its safetensors file like any other output: mode 0o666 less the umask."""
from __future__ import annotations

import os
import stat

import facelivt
from facelivt.models import save_weights


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_save_weights_mode_follows_the_umask(tmp_path):
    path = tmp_path / "w.safetensors"
    save_weights(facelivt.create_model("facelivt_s"), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~_umask()
