"""``facelivt quickstart`` without the ``[export]`` extra: refused at once, naming the extra."""
import sys

import pytest

from facelivt.cli import main


@pytest.mark.parametrize("module", ["onnx", "onnxruntime"])
def test_quickstart_without_the_export_extra_says_what_to_install(tmp_path, capsys, monkeypatch, module):
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    out = tmp_path / "qs"
    assert main(["quickstart", "--quick", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"needs {module}, which is not installed" in err and 'pip install "facelivt[export]"' in err
    assert "bash scripts/install.sh export" in err and "Traceback" not in err
    assert not out.exists()
