"""Without the [train] extra (tensorboard) a run still logs to log.jsonl, and the warning names the extra."""
import sys

import pytest

from facelivt.training.logging import RunLogger


def test_missing_tensorboard_warns_with_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.warns(RuntimeWarning, match=r'pip install "facelivt\[train\]"'):
        logger = RunLogger(tmp_path, tensorboard=True)
    logger.log("step", 1, loss=0.5)
    logger.close()
    assert '"loss": 0.5' in (tmp_path / "log.jsonl").read_text()
    assert not (tmp_path / "tensorboard").exists()
