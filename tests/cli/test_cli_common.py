"""facelivt.cli.common: the helpers shared by several commands, not a command itself."""
from __future__ import annotations

import argparse

from facelivt.cli import build_parser, common


def _commands(parser: argparse.ArgumentParser) -> set[str]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return set(action.choices)


def test_common_is_not_a_command():
    commands = _commands(build_parser())
    assert "common" not in commands
    assert {"align", "embed", "enroll", "identify", "verify"} <= commands
    assert not hasattr(common, "register")


def test_model_options_include_the_detector_options():
    p = argparse.ArgumentParser()
    common.add_model_args(p, gallery=True)
    args = p.parse_args(["--weights", "w.safetensors", "--pad", "0.3", "--pad-always"])
    assert args.model is None and args.weights == "w.safetensors" and args.pad == 0.3 and args.pad_always
