"""scripts/install.sh installs the runtime by default and the extras it is given; the extras it knows,
pyproject.toml's and those :mod:`facelivt.extras` names in its messages are the same; CI installs [dev].
(A real install is too slow for the suite; these run the script only up to where it refuses.)"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from facelivt.extras import EXTRAS

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
INSTALL = REPO / "scripts" / "install.sh"
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
OPTIONAL = PROJECT["optional-dependencies"]


def _install(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(INSTALL), *args], capture_output=True, text=True, timeout=60)


def _names(reqs: list[str]) -> set[str]:
    return {Requirement(r).name.lower() for r in reqs}


def test_install_sh_knows_exactly_the_extras_of_pyproject():
    known = re.search(r'^EXTRAS_KNOWN="([^"]*)"', INSTALL.read_text(), re.M).group(1).split()
    assert sorted(known) == sorted(OPTIONAL) == ["coreml", "dev", "export", "gallery", "serve", "train"]


@pytest.mark.parametrize("args, message", [
    (["nope"], "unknown extra 'nope'; choose from: export train gallery coreml serve dev"),
    (["export,nope"], "unknown extra 'nope'"),
    (["export", "dev"], "one argument at most"),
])
def test_install_sh_refuses_unknown_extras_before_installing_anything(args, message):
    proc = _install(*args)
    assert proc.returncode == 2 and message in proc.stderr and proc.stdout == ""


def test_install_sh_help_lists_the_extras():
    proc = _install("--help")
    assert proc.returncode == 0
    listed = re.search(r"comma-separated: ([a-z, ]+)", proc.stdout).group(1)
    assert sorted(listed.replace(",", " ").split()) == sorted(OPTIONAL)


def test_the_runtime_holds_no_test_export_or_coreml_tooling():
    runtime = _names(PROJECT["dependencies"])
    assert not runtime & {"pytest", "onnx", "onnxruntime", "onnxscript", "coremltools", "tensorboard", "faiss-cpu"}


def test_dev_installs_every_other_extra_and_pytest():
    dev = _names(OPTIONAL["dev"])
    assert "pytest" in dev
    for extra, reqs in OPTIONAL.items():
        assert _names(reqs) <= dev, extra


@pytest.mark.parametrize("module", sorted(EXTRAS))
def test_each_optional_module_is_installed_by_the_extra_its_message_names(module):
    dist = {"faiss": "faiss-cpu", "torch.utils.tensorboard": "tensorboard", "prometheus_client": "prometheus-client",
            "python_multipart": "python-multipart", "uvicorn.supervisors": "uvicorn"}.get(module, module)
    assert dist in _names(OPTIONAL[EXTRAS[module]])


def test_ci_and_the_pin_refresh_install_dev():
    for script in (REPO / ".ci" / "run", REPO / "scripts" / "refresh_pins.sh"):
        assert re.search(r"bash scripts/install\.sh dev$", script.read_text(), re.M), script
