"""save_weights writes atomically: a full disk raises OutputWriteError and leaves the earlier file."""
from __future__ import annotations

import pytest
import torch

from disk_helpers import fill, listing, tmpfs
from facelivt.errors import OutputWriteError
from facelivt.models import save_weights
from facelivt.models.weights import read_safetensors


class _Small(torch.nn.Module):
    def __init__(self, n: int) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(n, n)


def test_full_disk_keeps_the_earlier_weights():
    # Before: safetensors' SafetensorError (not an OSError: a traceback in the CLI) and a stray .tmp file.
    with tmpfs("200k") as disk:
        save_weights(_Small(4), disk / "w.safetensors")
        before = listing(disk)
        fill(disk, leave=0)
        with pytest.raises(OutputWriteError, match="No space left on device"):
            save_weights(_Small(200), disk / "w.safetensors")
        (disk / ".filler").unlink()
        assert listing(disk) == before
        tensors, meta = read_safetensors(disk / "w.safetensors")
        assert tensors["fc.weight"].shape == (4, 4) and meta["format"] == "facelivt"
