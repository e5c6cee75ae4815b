"""model.compile=true: the backbone runs through torch.compile (Inductor) and trains like eager;
checkpoints and exported weights hold the plain module's names."""
from __future__ import annotations

import shutil

import pytest
from safetensors.torch import load_file

from facelivt.training import load_checkpoint_file

from train_helpers import state_equal, train_eager_and_compiled

# Inductor turns the graph into C++ on the CPU: without a compiler torch.compile cannot run at all
needs_compiler = pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None,
                                    reason="torch.compile on the CPU needs a C++ compiler (g++), absent here")


@needs_compiler
def test_compiled_backbone_trains_like_eager(tmp_path, faces):
    runs = train_eager_and_compiled(tmp_path, faces)
    (eager, m_eager), (comp, m_comp) = runs[False], runs[True]
    assert comp.stopped == "completed" and comp.steps == eager.steps == 4
    assert comp.loss_history == pytest.approx(eager.loss_history, rel=1e-4, abs=1e-5)
    assert state_equal(m_comp.state_dict(), m_eager.state_dict()) < 1e-4
    saved = load_file(str(comp.weights))
    assert set(saved) == set(m_eager.state_dict())  # no "_orig_mod." prefixes from the compiled wrapper
    state = load_checkpoint_file(comp.last_checkpoint / "rank0.pt")
    assert set(state["model"]) == set(m_eager.state_dict())
