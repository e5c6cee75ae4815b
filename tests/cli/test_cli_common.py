"""facelivt.cli.common: the helpers shared by several commands, not a command itself; the old
import paths still give the same objects (deprecated re-exports, kept for one release)."""
from __future__ import annotations

import argparse

from facelivt.cli import align, build_parser, common, embed, enroll


def _commands(parser: argparse.ArgumentParser) -> set[str]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return set(action.choices)


def test_common_is_not_a_command():
    commands = _commands(build_parser())
    assert "common" not in commands
    assert {"align", "embed", "enroll", "identify", "verify"} <= commands
    assert not hasattr(common, "register")


def test_old_import_paths_give_the_shared_helpers():
    for name in ("add_model_args", "make_recognizer", "print_failures", "print_several_faces",
                 "check_threshold_option"):
        assert getattr(embed, name) is getattr(common, name)
    for name in ("add_detector_args", "make_detector"):
        assert getattr(align, name) is getattr(common, name)
    assert enroll.open_gallery is common.open_gallery


def test_model_options_include_the_detector_options():
    p = argparse.ArgumentParser()
    common.add_model_args(p, gallery=True)
    args = p.parse_args(["--weights", "w.safetensors", "--pad", "0.3", "--pad-always"])
    assert args.model is None and args.weights == "w.safetensors" and args.pad == 0.3 and args.pad_always
