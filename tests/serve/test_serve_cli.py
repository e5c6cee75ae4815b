"""``facelivt serve`` on the command line: options checked before anything loads, a missing extra named,
and the pieces that need no server (the micro-batcher, the error mapping) on their own."""
from __future__ import annotations

import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from facelivt.errors import UnavailableError
from facelivt.inference.gallery_store import GalleryError
from facelivt.serve.batcher import MicroBatcher
from facelivt.serve.config import ServeConfig, is_loopback
from facelivt.serve.errors import from_library
from serve_helpers import server_env


def _serve(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "facelivt", "serve", *args], capture_output=True, text=True,
                          timeout=300, env=server_env(), **kwargs)


@pytest.mark.parametrize("args, message", [
    (["--max-batch", "0"], "--max-batch must be a whole number above 0"),
    (["--max-wait-ms", "-1"], "--max-wait-ms must be 0 or more"),
    (["--port", "70000"], "--port must be 0..65535"),
    (["--request-timeout", "0"], "--request-timeout must be a number above 0"),
    (["--workers", "0"], "--workers must be an integer from 1"),
])
def test_bad_options_are_one_line_errors(tmp_path, args, message):
    proc = _serve(*args, cwd=tmp_path)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_a_missing_serve_extra_is_named(tmp_path):
    code = ("import sys; sys.modules['fastapi'] = None\n"
            "from facelivt.cli import main\nsys.exit(main(['serve', '--port', '0']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=server_env(),
                          cwd=tmp_path)
    assert proc.returncode == 2
    assert 'facelivt[serve]' in proc.stderr and "Traceback" not in proc.stderr


def test_config_travels_as_json():
    config = ServeConfig(weights="w.safetensors", max_batch=8, cors_origins=("http://a.test",), workers=3)
    assert ServeConfig.from_json(config.to_json()) == config


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                            ("127.0.0.2", True), ("0.0.0.0", False), ("192.168.1.4", False),
                                            ("example.com", False)])
def test_which_hosts_are_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_the_batcher_puts_concurrent_requests_in_one_model_call():
    gate = threading.Event()
    calls = []

    def model(crops):
        gate.wait(60)
        calls.append(len(crops))
        return crops.reshape(len(crops), -1).astype(np.float32)

    batcher = MicroBatcher(model, max_batch=16, max_wait_ms=60_000)
    first = batcher.submit(np.zeros((1, 1, 1, 1), np.uint8))  # an idle server: taken at once, held at the gate
    while batcher.waiting:
        pass
    inputs = [np.full((2, 1, 1, 1), i, np.uint8) for i in range(8)]
    futures = [batcher.submit(x) for x in inputs]  # queued meanwhile: they go through the model together
    gate.set()
    results = [f.result(60) for f in futures]
    assert first.result(60).shape == (1, 1)
    batcher.close()
    assert calls == [1, 16]
    for x, rows in zip(inputs, results):  # each request got its own rows back
        assert np.array_equal(rows, x.reshape(2, -1))


def test_an_idle_batcher_does_not_wait_for_others():
    batcher = MicroBatcher(lambda crops: np.zeros((len(crops), 4), np.float32), max_batch=32, max_wait_ms=600_000)
    for _ in range(3):  # one request at a time: each answered without waiting for a batch to fill
        assert batcher.submit(np.zeros((1, 1, 1, 1), np.uint8)).result(60).shape == (1, 4)
    batcher.close()


def test_the_batcher_goes_as_soon_as_the_requests_it_expects_are_in():
    gate = threading.Event()
    calls = []

    def model(crops):
        if not calls:
            gate.wait(60)
        calls.append(len(crops))
        return np.zeros((len(crops), 4), np.float32)

    one = np.zeros((1, 1, 1, 1), np.uint8)
    batcher = MicroBatcher(model, max_batch=32, max_wait_ms=600_000)
    a = batcher.submit(one)  # idle: taken at once, held at the gate
    while batcher.waiting:
        pass
    b, c = batcher.submit(one), batcher.submit(one)  # two more in flight meanwhile: three expected next
    gate.set()
    a.result(60)
    d = batcher.submit(one)  # the client answered comes back: the third expected request
    for f in (b, c, d):  # far sooner than the 600 s wait: the batch went when the three were in
        assert f.result(60).shape == (1, 4)
    batcher.close()
    assert calls == [1, 3]


def test_the_batcher_keeps_batches_within_max_batch_and_answers_a_failure_to_all():
    gate = threading.Event()
    calls = []

    def model(crops):
        gate.wait(60)
        calls.append(len(crops))
        if len(crops) == 3:
            raise RuntimeError("model failed")
        return np.zeros((len(crops), 4), np.float32)

    batcher = MicroBatcher(model, max_batch=4, max_wait_ms=0)
    first = batcher.submit(np.zeros((1, 1, 1, 1), np.uint8))  # taken at once: the model holds it at the gate
    while batcher.waiting:
        pass
    rest = [batcher.submit(np.zeros((n, 1, 1, 1), np.uint8)) for n in (2, 1, 4)]
    gate.set()
    assert first.result(60).shape == (1, 4)
    with pytest.raises(RuntimeError, match="model failed"):
        rest[0].result(60)
    with pytest.raises(RuntimeError, match="model failed"):
        rest[1].result(60)
    assert rest[2].result(60).shape == (4, 4)
    batcher.close()
    assert calls == [1, 3, 4] and max(calls) <= 4


def test_an_unavailable_gallery_is_a_503_and_other_errors_are_500_without_traceback():
    class GoneError(GalleryError, UnavailableError):
        pass

    err = from_library(GoneError("the database went away"), gallery=True)
    assert (err.status, err.code) == (503, "gallery_unavailable")
    err = from_library(ZeroDivisionError("boom"))
    assert (err.status, err.code) == (500, "internal") and "boom" not in err.message
