"""facelivt.devices.resolve_device: every device name is checked before any work, with one clear error."""
from __future__ import annotations

import pytest
import torch

from facelivt.devices import DeviceError, DeviceUnavailableError, resolve_device
from facelivt.errors import FaceLiVTError


@pytest.mark.parametrize("spec", ["warp-drive", "gpu", "cuda:x", "cuda:-1", "", "cuda 0"])
def test_invalid_names_are_refused(spec):
    with pytest.raises(DeviceError, match="invalid device") as err:
        resolve_device(spec, option="--device")
    assert isinstance(err.value, FaceLiVTError) and isinstance(err.value, ValueError)
    assert f"--device {spec}" in str(err.value) and "expected auto, cpu, cuda, cuda:N or mps" in str(err.value)


@pytest.mark.parametrize("spec", ["xpu", "meta", torch.device("meta")])
def test_devices_facelivt_does_not_run_on_are_refused(spec):
    with pytest.raises(DeviceError, match="unsupported device"):
        resolve_device(spec)


def test_cpu_and_auto():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    usable = torch.cuda.is_available() and torch.cuda.device_count() > 0
    for spec in ("auto", None):
        assert resolve_device(spec).type == ("cuda" if usable else "cpu")


def test_cuda_on_this_machine():
    """On a CPU-only build or a machine without GPU, ``cuda`` is refused saying why; with GPUs, an
    index past the last one is refused instead."""
    if not torch.cuda.is_available():
        with pytest.raises(DeviceUnavailableError) as err:
            resolve_device("cuda", option="--device")
        msg = str(err.value)
        assert isinstance(err.value, RuntimeError) and isinstance(err.value, FaceLiVTError)
        assert msg.startswith("CUDA was asked for (--device cuda) but ") and msg.endswith("; use --device cpu")
        reason = "has no CUDA support" if not torch.backends.cuda.is_built() else "no CUDA GPU is usable"
        assert reason in msg and torch.__version__ in msg
    else:
        count = torch.cuda.device_count()
        assert resolve_device("cuda").type == "cuda"
        assert resolve_device(f"cuda:{count - 1}") == torch.device(f"cuda:{count - 1}")
        with pytest.raises(DeviceUnavailableError, match=rf"GPU {count} was asked for \(--device cuda:{count}\)"):
            resolve_device(f"cuda:{count}", option="--device")
    with pytest.raises(DeviceUnavailableError):
        resolve_device("cuda:99")


@pytest.fixture
def two_gpus(monkeypatch):
    """A CUDA build that sees two GPUs (only the answers resolve_device asks for are faked)."""
    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


def test_gpu_index_and_local_rank(two_gpus):
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    assert resolve_device("cuda") == torch.device("cuda")
    assert resolve_device("cuda", 1) == torch.device("cuda:1")  # a bare cuda is this rank's GPU
    assert resolve_device("auto", 1) == torch.device("cuda:1")
    assert resolve_device("cuda:0", 1) == torch.device("cuda:0")  # an explicit index wins
    with pytest.raises(DeviceUnavailableError, match=r"GPU 3 was asked for \(--device cuda:3\) but only 2 CUDA GPUs "
                                                     r"are visible \(cuda:0 \.\. cuda:1\)"):
        resolve_device("cuda:3", option="--device")
    with pytest.raises(DeviceUnavailableError, match=r"GPU 2 was asked for \(train.device=auto\)"):
        resolve_device("auto", 2, option="train.device")  # more processes than GPUs


def test_cuda_build_without_gpu(monkeypatch):
    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceUnavailableError, match=r"CUDA was asked for \(train.device=cuda\) but no CUDA GPU is "
                                                     r"usable here .*; use train.device=cpu$"):
        resolve_device("cuda", option="train.device")
    assert resolve_device("auto") == torch.device("cpu")


def test_mps_where_there_is_none():
    if torch.backends.mps.is_available():
        assert resolve_device("mps").type == "mps"
        return
    with pytest.raises(DeviceUnavailableError, match=r"MPS was asked for \(device='mps'\) .*; use device='cpu'"):
        resolve_device("mps")
