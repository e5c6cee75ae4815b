"""The README's Python code runs as written: every ``python`` block from the top of README.md to the end
of its "Python API" section is executed, in order and in one namespace, in a folder holding the photos
it names (links to real CelebA photos) and with the default pretrained weights in a local cache (random
weights of the default model: what the code does is tested, not how well it recognises)."""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
import torch

from facelivt.inference import api
from facelivt.inference.api import FaceSearch, Verification
from facelivt.models import DEFAULT_PRETRAINED, create_model, save_weights
from facelivt.models.hub import ENV_HOME, parse_weights_ref

REPO = Path(__file__).resolve().parents[1]
CELEBA = REPO.parent / "shared" / "data" / "celeba_subset"


def readme_code() -> list[str]:
    """The python blocks of README.md up to the end of its "Python API" section."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index("\n## Python API\n")
    end = text.index("\n## ", start + 1)
    blocks = re.findall(r"^```python\n(.*?)^```", text[:end], flags=re.S | re.M)
    assert len(blocks) >= 2 and "cv2.imread" in blocks[0], "the first Python example reads photos with OpenCV"
    return blocks


def _cache_default_weights(home: Path) -> None:
    """A cache entry for the default pretrained name, as ``facelivt download`` leaves one (random weights)."""
    ref = parse_weights_ref(DEFAULT_PRETRAINED)
    weights = home / "weights" / f"{ref.key}.safetensors"
    weights.parent.mkdir(parents=True)
    torch.manual_seed(0)
    save_weights(create_model(DEFAULT_PRETRAINED), weights)
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    record = {"reference": DEFAULT_PRETRAINED, "pretrained": DEFAULT_PRETRAINED, "variant": DEFAULT_PRETRAINED,
              "source": "a test's random weights", "sha256": digest, "safetensors_sha256": digest}
    weights.with_suffix(".json").write_text(json.dumps(record))


@pytest.fixture
def readme_folder(tmp_path, monkeypatch, mtcnn_reference):
    """A working folder with alice1/alice2 (one person), bob1 (another) and group.jpg (several faces)."""
    reference = mtcnn_reference
    single = [k for k in sorted(reference) if len(reference[k]) == 1]
    alice = [k for k in single if k.startswith(single[0].split("/")[0] + "/")][:2]
    bob = next(k for k in single if k.split("/")[0] != alice[0].split("/")[0])
    group = next(k for k in sorted(reference) if len(reference[k]) >= 3)
    work = tmp_path / "work"
    work.mkdir()
    for name, key in (("alice1.jpg", alice[0]), ("alice2.jpg", alice[1]), ("bob1.jpg", bob), ("group.jpg", group)):
        (work / name).symlink_to(CELEBA / key)
    _cache_default_weights(tmp_path / "home")
    monkeypatch.setenv(ENV_HOME, str(tmp_path / "home"))
    monkeypatch.chdir(work)
    api.clear_cache()
    yield work
    api.clear_cache()  # the cached recognizers hold this test's weights


def test_the_readme_python_examples_run(readme_folder, capsys, one_torch_thread):
    namespace: dict = {"__name__": "readme"}
    for block in readme_code():
        exec(compile(block, str(REPO / "README.md"), "exec"), namespace)
    assert isinstance(namespace["result"], Verification)
    assert namespace["result"].threshold_source and len(namespace["result"].faces) == 2
    assert (readme_folder / "people" / "gallery.sqlite").is_file()
    assert isinstance(namespace["hit"], FaceSearch) and len(namespace["faces"]) >= 3
    printed = capsys.readouterr().out
    assert printed.count("\n") >= 5
