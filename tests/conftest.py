"""Project-wide test helpers."""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

# No test may reach the internet, nor read or fill the user's caches: Hugging Face downloads go to a
# loopback port where nothing listens (connection refused at once) unless a test points HF_ENDPOINT at
# its own server (tests/hf_server.py), and both caches live in a folder of this test session. Set at
# import, before huggingface_hub reads them, and inherited by every process a test starts.
_CACHES = tempfile.mkdtemp(prefix="facelivt-test-caches-")
atexit.register(shutil.rmtree, _CACHES, ignore_errors=True)
os.environ["HF_ENDPOINT"] = "http://127.0.0.1:9"
os.environ["HF_HOME"] = os.path.join(_CACHES, "hf")
os.environ["FACELIVT_HOME"] = os.path.join(_CACHES, "facelivt")
for _var in ("HF_HUB_OFFLINE", "HF_TOKEN", "HF_HUB_CACHE", "XDG_CACHE_HOME"):
    os.environ.pop(_var, None)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    assert SHARED.is_dir(), f"the shared folder must sit beside the repository: {SHARED}"
    return SHARED


@pytest.fixture(autouse=True)
def _two_threads():
    """Tests run on the 2-core reference machine: keep torch from oversubscribing it."""
    before = torch.get_num_threads()
    torch.set_num_threads(min(before, 2))
    yield
    torch.set_num_threads(before)


@pytest.fixture
def one_torch_thread():
    """One torch thread for a test, restored after: MTCNN's small convolutions gain little from two,
    and on a shared, busy CPU two OpenMP threads were measured 10x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def mtcnn_reference() -> dict:
    """Reference MTCNN detections on every ../shared/data/celeba_subset photo."""
    import json

    return json.loads((SHARED / "reference" / "celeba_subset_mtcnn.json").read_text())


@pytest.fixture(scope="session")
def faces_batch(shared_dir):
    """Four real aligned face crops, normalised as the network expects."""
    import numpy as np
    from PIL import Image

    from facelivt.data.transforms import to_tensor_batch

    root = shared_dir / "data" / "celeba_subset_112"
    paths = sorted(p for d in sorted(root.iterdir())[:2] for p in sorted(d.iterdir())[:2])
    imgs = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])
    return to_tensor_batch(imgs)


@pytest.fixture(scope="session")
def pg_server():
    """A PostgreSQL server of this test session (tests/pg_helpers.py: Debian's binaries, a new cluster in
    a temporary folder, 127.0.0.1 on a free port), torn down after; ``stop()``, ``start()``,
    ``restart()`` for the reliability tests. Skipped, saying why, where the server is not installed."""
    from pg_helpers import SKIP_REASON, PgServer, find_bin_dir

    if find_bin_dir() is None:
        pytest.skip(SKIP_REASON)
    server = PgServer.start_new()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def pg_database(pg_server, request) -> str:
    """The URL of a new, empty database on :func:`pg_server` (one per test; no ``gallery=``)."""
    if pg_server.proc is None:  # a test stopped it and failed before starting it again
        pg_server.start()
    name = f"t{len(pg_server.execute('SELECT datname FROM pg_database', database='postgres'))}_{os.getpid()}"
    pg_server.execute(f"CREATE DATABASE {name}", database="postgres")
    return pg_server.url.rsplit("/", 1)[0] + f"/{name}"
