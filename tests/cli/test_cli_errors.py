"""What the command line does with an exception: a user's mistake is one line and exit code 2,
a bug keeps its traceback; library warnings reach stderr through the ``facelivt`` logger."""
from __future__ import annotations

import ast
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from disk_helpers import assert_clean_failure, run_cli
from facelivt.cli import info as info_cmd
from facelivt.cli import main
from facelivt.errors import FaceLiVTError, InvalidInputError

CLI = Path(__file__).resolve().parents[2] / "facelivt" / "cli"


def test_user_error_is_one_line_and_exit_2(monkeypatch, capsys):
    def run(args):
        raise InvalidInputError("the input is wrong")

    monkeypatch.setattr(info_cmd, "run", run)
    assert main(["info"]) == 2
    captured = capsys.readouterr()
    assert captured.err == "facelivt info: error: the input is wrong\n"
    assert captured.out == ""


@pytest.mark.parametrize("bug", [RuntimeError, KeyError, ValueError, TypeError])
def test_bug_keeps_its_exception(monkeypatch, capsys, bug):
    def run(args):
        raise bug("an internal invariant broke")

    monkeypatch.setattr(info_cmd, "run", run)
    with pytest.raises(bug, match="an internal invariant broke"):
        main(["info"])
    assert "error:" not in capsys.readouterr().err


def test_bug_shows_a_traceback_in_a_real_process(tmp_path):
    script = (
        "import sys\n"
        "import facelivt.cli.info as info\n"
        "def run(args):\n"
        "    raise RuntimeError('an internal invariant broke')\n"
        "info.run = run\n"
        "from facelivt.cli import main\n"
        "sys.exit(main(['info']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr
    assert "RuntimeError: an internal invariant broke" in proc.stderr
    assert "facelivt info: error" not in proc.stderr


def test_library_warning_reaches_stderr_once(monkeypatch, capsys):
    def run(args):
        logging.getLogger("facelivt.some.module").warning("careful: %s", "x")
        logging.getLogger("facelivt.some.module").info("a detail nobody asked for")
        return 0

    monkeypatch.setattr(info_cmd, "run", run)
    assert main(["info"]) == 0
    assert main(["info"]) == 0  # a second run in the same process adds no second handler
    err = capsys.readouterr().err
    assert err.count("warning: careful: x\n") == 2
    assert "a detail nobody asked for" not in err


@pytest.mark.parametrize("args", [["info", "--input-size", "-3", "facelivt_s"], ["info", "--input-size", "8", "facelivt_s"]])
def test_bad_input_size_is_a_user_error(args):
    """Before, the RuntimeError of torch.zeros / a too-small map was shown only because every RuntimeError was."""
    proc = run_cli(*args)
    assert_clean_failure(proc)
    assert "facelivt info: error:" in proc.stderr


def test_commands_raise_no_builtin_errors():
    """An argument check in a command must raise a FaceLiVTError: a plain ValueError would now be shown as a bug."""
    builtin = {"ValueError", "KeyError", "RuntimeError", "FileNotFoundError", "TypeError", "OSError"}
    found = []
    for path in sorted(CLI.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and getattr(node.exc.func, "id", None) in builtin:
                found.append(f"{path.name}:{node.lineno}")
    assert not found, found


def test_error_classes_refine_the_builtin_they_replace():
    from facelivt import errors

    pairs = {"InvalidInputError": ValueError, "InputNotFoundError": FileNotFoundError, "UnknownNameError": KeyError,
             "UnavailableError": RuntimeError, "OutputWriteError": OSError}
    for name, builtin in pairs.items():
        cls = getattr(errors, name)
        assert issubclass(cls, FaceLiVTError) and issubclass(cls, builtin), name
