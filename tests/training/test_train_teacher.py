"""Frozen teacher and its embedding cache: cached targets equal the live teacher's."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import facelivt
from facelivt.data.transforms import hflip
from facelivt.errors import OutputWriteError
from facelivt.training import TeacherCache, TeacherTargets, build_teacher
from facelivt.training.engine import build_step_runner
from facelivt.training.distributed import DistEnv

from disk_helpers import tmpfs
from train_helpers import TinyNet, quick_config


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # a 2-thread pool crawls on a busy 2-core machine
    yield
    torch.set_num_threads(before)


def test_teacher_is_frozen_deploy_form_and_refuses_random_weights(tmp_path, one_thread):
    with pytest.raises(ValueError, match="teacher_weights"):
        build_teacher("facelivt_s", None)
    with pytest.raises(FileNotFoundError, match="teacher weights not found"):
        build_teacher("facelivt_s", str(tmp_path / "missing.safetensors"))
    from facelivt.models import save_weights

    torch.manual_seed(0)
    model = facelivt.create_model("facelivt_s").eval()
    save_weights(model, tmp_path / "t.safetensors")
    teacher = build_teacher("facelivt_s", str(tmp_path / "t.safetensors"))
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    assert getattr(teacher, "is_deploy_form", False)
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        assert torch.allclose(teacher(x), model(x), atol=1e-4)


def test_cache_gives_the_live_teacher_targets():
    torch.manual_seed(0)
    teacher = TinyNet(dim=8).eval()
    live = TeacherTargets(teacher)
    cache = TeacherCache(10, 8, "float32")
    cached = TeacherTargets(teacher, cache)
    images = torch.randn(10, 3, 112, 112)
    flips = torch.tensor([0, 1, 0, 1, 1, 0, 0, 1, 0, 1])
    views = torch.where(flips[:, None, None, None].bool(), hflip(images), images)
    idx = torch.arange(10)
    first = cached(views[:6], idx[:6], flips[:6])  # all misses: teacher runs on the view and its flip
    assert cache.misses == 6 and cache.hits == 0
    assert torch.allclose(first, live(views[:6]), atol=1e-6)
    # next epoch: other flips of the same samples come from the cache without running the teacher
    other = 1 - flips
    other_views = torch.where(other[:, None, None, None].bool(), hflip(images), images)
    calls = []
    handle = teacher.register_forward_hook(lambda *a: calls.append(1))
    again = cached(other_views[:6], idx[:6], other[:6])
    handle.remove()
    assert not calls and cache.hits == 6
    assert torch.allclose(again, live(other_views[:6]), atol=1e-5)
    # a mixed batch: some hits, some misses
    mixed = cached(views, idx, flips)
    assert torch.allclose(mixed, live(views), atol=1e-5)
    assert cache.filled_fraction == 1.0


def test_float16_cache_rounds_hits_and_misses_alike():
    teacher = TinyNet(dim=8).eval()
    cached = TeacherTargets(teacher, TeacherCache(4, 8, "float16"))
    x = torch.randn(4, 3, 112, 112)
    idx, flips = torch.arange(4), torch.zeros(4, dtype=torch.long)
    a = cached(x, idx, flips)
    b = cached(x, idx, flips)
    assert torch.equal(a, b)
    assert torch.allclose(a, teacher(x).detach(), rtol=2e-3, atol=1e-3)


def test_without_flips_only_the_plain_view_is_computed():
    teacher = TinyNet(dim=8).eval()
    cache = TeacherCache(4, 8, "float32")
    seen = []
    teacher.register_forward_hook(lambda m, inp, out: seen.append(inp[0].shape[0]))
    x = torch.randn(4, 3, 112, 112)
    out = TeacherTargets(teacher, cache, both_views=False)(x, torch.arange(4), torch.zeros(4, dtype=torch.long))
    assert seen == [4] and cache.filled_fraction == 0.5
    assert torch.allclose(out, teacher(x).detach(), atol=1e-6)


def test_disk_cache_persists_and_resets_for_another_teacher(tmp_path):
    c = TeacherCache(5, 4, "float32", tmp_path, key="teacher-a")
    c.store(np.array([1, 3]), np.array([0, 1]), np.ones((2, 4), np.float32), np.full((2, 4), 2, np.float32))
    c.flush()
    del c
    again = TeacherCache(5, 4, "float32", tmp_path, key="teacher-a")
    emb, hit = again.lookup(np.array([1, 1, 3, 2]), np.array([0, 1, 0, 0]))
    assert hit.tolist() == [True, True, True, False]
    assert emb[0].tolist() == [1] * 4 and emb[1].tolist() == [2] * 4 and emb[2].tolist() == [2] * 4
    del again
    other = TeacherCache(5, 4, "float32", tmp_path, key="teacher-b")
    assert other.filled_fraction == 0.0


def test_disk_cache_on_a_full_disk_is_an_error_and_leaves_nothing():
    with tmpfs("256k") as disk:
        folder = disk / "teacher_cache"
        with pytest.raises(OutputWriteError, match=r"teacher_cache/embeddings.bin: No space left on device \(the teacher cache needs 1,024,000 bytes"):
            TeacherCache(1000, 128, "float32", folder, key="k")
        assert list(disk.iterdir()) == []
        small = TeacherCache(10, 4, "float32", folder, key="k")  # what fits is made whole, no hole in it
        assert all(p.stat().st_blocks * 512 >= p.stat().st_size for p in folder.iterdir())
        assert small.filled_fraction == 0.0


def test_cache_needs_indices_and_valid_sizes():
    with pytest.raises(ValueError, match="indices"):
        TeacherTargets(TinyNet(8).eval(), TeacherCache(2, 8))(torch.zeros(1, 3, 112, 112))
    with pytest.raises(ValueError):
        TeacherCache(0, 8)
    with pytest.raises(ValueError, match="dtype"):
        TeacherCache(2, 8, "int8")


def test_teacher_and_student_sizes_must_match(tmp_path):
    cfg = quick_config(tmp_path)
    cfg.distill.enabled = True
    with pytest.raises(ValueError, match="same size"):
        build_step_runner(cfg, DistEnv(), 4, 10, model=TinyNet(dim=16), teacher=TinyNet(dim=8), num_samples=8)
