"""constraints.txt (the pins CI and scripts/install.sh install from) agrees with pyproject.toml, and the
checker behind it (scripts/pins.py) catches each kind of disagreement. Whether an environment holds exactly
the pins is checked by .ci/run right after it installs into its new virtual environment (a developer's own
environment, with a CUDA torch say, need not), with the same checker, tested here on made-up environments."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("pins", REPO / "scripts" / "pins.py")
pins = sys.modules["pins"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pins)


def _pins(tmp_path: Path, text: str) -> tuple[dict, list[str]]:
    path = tmp_path / "constraints.txt"
    path.write_text(text)
    return pins.read_pins(path)


def test_constraints_pin_every_requirement_of_pyproject_within_its_range():
    found, problems = pins.read_pins()
    assert problems == []
    reqs = pins.project_requirements()
    names = {r.name for _, r in reqs}
    assert {"torch", "numpy", "onnxruntime", "pytest", "faiss-cpu"} <= names  # dependencies and extras were read
    assert pins.check_against_project(found, reqs, [pins.mtcnn_weights_pin()]) == []
    # the MTCNN weights package of install.sh is pinned, at the release install.sh installs
    assert str(found["facenet-pytorch"].version) == "2.6.0" == str(next(iter(pins.mtcnn_weights_pin().specifier)).version)


def test_torch_pin_has_no_local_label_so_a_cuda_build_of_the_release_satisfies_it():
    found, _ = pins.read_pins()
    assert found["torch"].version.local is None
    assert pins.check_installed({"torch": found["torch"]}, {"torch": f"{found['torch'].version}+cu128"}) == []


def test_the_checker_script_passes_on_the_repository(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "pins.py")], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "agree with pyproject.toml" in proc.stdout


def test_read_pins_rejects_ranges_unpinned_names_and_repeats(tmp_path):
    found, problems = _pins(tmp_path, "# header\n\nnumpy==2.0.1\nPyYAML==6.0\nscipy>=1.0\ntqdm\npyyaml==6.1\nx==not-a-version\n")
    assert set(found) == {"numpy", "pyyaml"} and str(found["pyyaml"].version) == "6.1"
    assert len(problems) == 4
    assert "scipy>=1.0" in problems[0] and "'tqdm'" in problems[1]
    assert "pinned twice" in problems[2] and "line 4" in problems[2]
    assert "invalid version" in problems[3]


def test_check_against_project_reports_missing_and_out_of_range_pins(tmp_path):
    found, _ = _pins(tmp_path, "numpy==1.22.0\nonnx==1.15.0\n")
    reqs = [("dependencies", Requirement("numpy>=1.23")), ("extra 'export'", Requirement("onnx>=1.14")),
            ("extra 'dev'", Requirement("pytest>=7")), ("dependencies", Requirement("tomli>=2; python_version < '3'"))]
    problems = pins.check_against_project(found, reqs, [Requirement("facenet-pytorch==2.6.0")])
    assert len(problems) == 3, problems  # the marker that does not hold here needs no pin
    assert "numpy==1.22.0" in problems[0] and "numpy>=1.23" in problems[0]
    assert "pytest" in problems[1] and "no pin" in problems[1]
    assert "facenet-pytorch" in problems[2] and "install.sh" in problems[2]


def test_check_installed_wants_exactly_the_pins(tmp_path):
    found, _ = _pins(tmp_path, "numpy==2.4.6\ntorch==2.13.0\nPyYAML==6.0.4\n")
    exact = {"numpy": "2.4.6", "torch": "2.13.0+cpu", "pyyaml": "6.0.4", "facelivt": "0.1.0"}
    assert pins.check_installed(found, exact) == []
    problems = pins.check_installed(found, {"numpy": "2.4.5", "torch": "2.13.0", "requests": "2.0", "facelivt": "0.1.0"})
    assert problems == ["numpy 2.4.5 is installed but 2.4.6 is pinned", "PyYAML==6.0.4 is pinned but not installed",
                        "requests 2.0 is installed but has no pin"]


def test_installed_versions_sees_this_environment():
    have = pins.installed_versions()
    assert "pytest" in have and "packaging" in have and "pip" not in have


@pytest.mark.parametrize("script", ["install.sh", "refresh_pins.sh"])
def test_setup_scripts_are_valid_bash(script):
    assert subprocess.run(["bash", "-n", str(REPO / "scripts" / script)]).returncode == 0
