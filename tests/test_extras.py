"""An optional package that is missing is named with the extra that installs it."""
import sys

import numpy as np
import pytest

from facelivt.deploy.sessions import onnx_session
from facelivt.errors import FaceLiVTError
from facelivt.extras import EXTRAS, MissingExtraError, require


def test_require_returns_an_installed_module():
    assert require("onnxruntime", "ONNX Runtime").InferenceSession is not None


@pytest.mark.parametrize("module", sorted(EXTRAS))
def test_a_missing_optional_package_names_its_extra(monkeypatch, module):
    monkeypatch.setitem(sys.modules, module, None)  # import of it now raises ImportError
    with pytest.raises(MissingExtraError, match=rf'facelivt\[{EXTRAS[module]}\]') as info:
        require(module, "this step")
    assert isinstance(info.value, FaceLiVTError) and isinstance(info.value, ImportError)
    assert str(info.value).startswith(f"this step needs {module.split('.')[0]}")


def test_onnx_runtime_missing_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    path = tmp_path / "m.onnx"
    path.write_bytes(np.zeros(4, np.uint8).tobytes())
    with pytest.raises(MissingExtraError, match=r'pip install "facelivt\[export\]"'):
        onnx_session(path)
