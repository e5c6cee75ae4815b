"""save_weights creates its safetensors file like any other output: mode 0o666 less the umask (issue 12)."""
from __future__ import annotations

import os
import stat

import pytest

import facelivt
from facelivt.models import save_weights


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@pytest.mark.xfail(
    strict=True,
    reason="save_weights still writes through safetensors' own temporary file (mode 0600); it goes through "
           "facelivt.files on the outputs branch of issue 12: remove this mark when both are merged",
)
def test_save_weights_mode_follows_the_umask(tmp_path):
    path = tmp_path / "w.safetensors"
    save_weights(facelivt.create_model("facelivt_s"), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~_umask()
