"""The command line's spelling rules (issue 22, item 5), checked on every parser `facelivt` builds:
each sub-command and each of their sub-commands (``gallery check``, ...), including commands added
later, since the walk starts from ``build_parser()`` with every command of ``COMMANDS``.

Each rule is a function ``(path, parser, cli) -> [problem, ...]``; every rule has a test on the real
command line and a test that it refuses a parser planted with the violation it looks for.
"""
from __future__ import annotations

import argparse
import inspect
import re
import types
from dataclasses import dataclass, field

import pytest

from facelivt.cli import COMMANDS, build_parser

# One spelling per concept: a spelling on the left must not appear; the right says what to use.
BANNED = {
    "--no-progress": "--quiet", "--silent": "--quiet", "--no-bar": "--quiet",
    "--batch": "--batch-size", "--bs": "--batch-size",
    "--output": "--out", "--output-dir": "--out", "--out-dir": "--out", "--outdir": "--out", "--to": "--out",
    "--gpu": "--device", "--cuda": "--device",
    "--images": "a positional IMAGES argument", "--image": "a positional IMAGES argument",
    "--input": "a positional argument", "--inputs": "a positional argument",
    "--as-json": "--json", "--json-out": "--json",
}
# Where a command shows progress from inside the library, with nothing in the command's own code
# that says "progress" (the rest is derived from the code the command runs).
PROGRESS_INSIDE = {("facelivt", "train"), ("facelivt", "quickstart")}


@dataclass
class Cli:
    """Every parser of a command line, by path (``("facelivt", "gallery", "check")``)."""

    parsers: dict[tuple[str, ...], argparse.ArgumentParser] = field(default_factory=dict)

    @classmethod
    def of(cls, root: argparse.ArgumentParser) -> "Cli":
        cli = cls()
        cli._walk(("facelivt",), root)
        return cli

    def _walk(self, path: tuple[str, ...], parser: argparse.ArgumentParser) -> None:
        self.parsers[path] = parser
        for sub in _subparsers(parser):
            seen = set()
            for name, child in sub.choices.items():
                if id(child) not in seen:  # an alias names the same parser again
                    seen.add(id(child))
                    self._walk(path + (name,), child)

    def leaves(self):
        """The parsers that run something (no sub-commands of their own)."""
        return {path: p for path, p in self.parsers.items() if not _subparsers(p)}


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse._SubParsersAction]:
    return [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]


def _option(parser: argparse.ArgumentParser, name: str) -> argparse.Action | None:
    return parser._option_string_actions.get(name)


def _long_options(parser: argparse.ArgumentParser) -> set[str]:
    return {s for a in parser._actions for s in a.option_strings if s.startswith("--") and s != "--help"}


def _code_says_progress(func, seen: set | None = None) -> bool:
    """Whether ``func``, or a function of the facelivt CLI it calls (followed through its module's
    globals), shows or switches progress (its source names ``progress`` or ``tqdm``)."""
    seen = set() if seen is None else seen
    if not isinstance(func, types.FunctionType) or func in seen or not func.__module__.startswith("facelivt.cli"):
        return False
    seen.add(func)
    if re.search(r"progress|tqdm", inspect.getsource(func)):
        return True
    return any(_code_says_progress(func.__globals__.get(name), seen) for name in _names(func.__code__))


def _names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):  # lambdas, comprehensions, nested functions
            names |= _names(const)
    return names


# ----------------------------------------------------------------------------------------------- rules

def rule_description(path, parser, cli) -> list[str]:
    """Every parser, commands and sub-commands alike, has a description (what --help shows first)."""
    return [] if (parser.description or "").strip() else [f"{' '.join(path)}: no description"]


def rule_banned_spellings(path, parser, cli) -> list[str]:
    """No second spelling of a concept (--no-progress, --batch, --output, --to, --images, ...)."""
    return [f"{' '.join(path)}: {opt} is spelled {BANNED[opt]} in facelivt" for opt in sorted(_long_options(parser))
            if opt in BANNED]


def rule_device_auto(path, parser, cli) -> list[str]:
    """--device, where a command has it, defaults to auto."""
    action = _option(parser, "--device")
    if action is None or action.default == "auto":
        return []
    return [f"{' '.join(path)}: --device defaults to {action.default!r}, not 'auto'"]


def rule_out_says_file_or_folder(path, parser, cli) -> list[str]:
    """--out is a FILE (one output) or a DIR (several): its metavar starts with FILE or DIR and its help
    says 'file' or 'folder' accordingly."""
    action = _option(parser, "--out")
    if action is None:
        return []
    metavar, text = str(action.metavar or ""), (action.help or "").lower()
    if metavar.startswith("FILE") and re.search(r"\bfile\b", text):
        return []
    if metavar.startswith("DIR") and re.search(r"\bfolder\b", text):
        return []
    return [f"{' '.join(path)}: --out must have metavar FILE... with help saying 'file', or DIR with help "
            f"saying 'folder' (metavar {metavar or None!r}, help {action.help!r})"]


def rule_json(path, parser, cli) -> list[str]:
    """Every command that runs something reports, and says it with --json too."""
    if path not in cli.leaves() or _option(parser, "--json") is not None:
        return []
    return [f"{' '.join(path)}: no --json"]


def rule_quiet_where_progress(path, parser, cli) -> list[str]:
    """A command that shows progress can be made quiet with --quiet."""
    if path not in cli.leaves() or _option(parser, "--quiet") is not None:
        return []
    if path in PROGRESS_INSIDE or _code_says_progress(parser.get_default("func")):
        return [f"{' '.join(path)}: shows progress but has no --quiet"]
    return []


def rule_one_spelling(path, parser, cli) -> list[str]:
    """No option spelled two ways across the command line (--foo-bar / --foo_bar / --foobar / --no-foo-bar).
    Checked once, on the root parser, over every parser's options."""
    if len(path) > 1:
        return []
    spellings: dict[str, set[str]] = {}
    for p in cli.parsers.values():
        for opt in _long_options(p):
            key = re.sub(r"^no[-_]", "", opt[2:].lower()).replace("-", "").replace("_", "")
            spellings.setdefault(key, set()).add(opt)
    return [f"one concept, several spellings: {', '.join(sorted(s))}" for s in spellings.values() if len(s) > 1]


RULES = [rule_description, rule_banned_spellings, rule_device_auto, rule_out_says_file_or_folder, rule_json,
         rule_quiet_where_progress, rule_one_spelling]


def violations(root: argparse.ArgumentParser, rules=RULES) -> list[str]:
    cli = Cli.of(root)
    return [problem for rule in rules for path, parser in cli.parsers.items() for problem in rule(path, parser, cli)]


# ----------------------------------------------------------------------------------------------- tests

@pytest.fixture(scope="module")
def facelivt_parser() -> argparse.ArgumentParser:
    return build_parser()  # every command of COMMANDS, with its full parser


def test_the_walk_reaches_every_command_and_sub_command(facelivt_parser):
    cli = Cli.of(facelivt_parser)
    assert {path[1] for path in cli.parsers if len(path) > 1} == set(COMMANDS)
    assert ("facelivt", "gallery", "check") in cli.leaves() and ("facelivt", "gallery") not in cli.leaves()


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.__name__)
def test_rule_holds_for_every_command(facelivt_parser, rule):
    assert violations(facelivt_parser, [rule]) == []


def _bad_run(args):
    return _show(args)


def _show(args):
    bar = "tqdm"  # what a progress bar's code names
    return 0 if bar else 1


def _show_nothing(args):
    return 0


# the checker follows the functions of facelivt.cli only: the planted commands' functions pose as such
for _func in (_bad_run, _show, _show_nothing):
    _func.__module__ = "facelivt.cli.planted"


def _planted() -> argparse.ArgumentParser:
    """A command line with one violation of each rule (and one command that keeps them all)."""
    root = argparse.ArgumentParser(prog="facelivt", description="root")
    sub = root.add_subparsers(dest="command")
    bad = sub.add_parser("bad")  # no description
    bad.add_argument("--no-progress", action="store_true")
    bad.add_argument("--batch", type=int)
    bad.add_argument("--device", default="cpu")
    bad.add_argument("--out", help="where to write")
    bad.add_argument("--fold-count")
    bad.set_defaults(func=_bad_run)  # shows progress (through a helper) without --quiet; no --json
    other = sub.add_parser("other", description="spells an option of `bad` another way")
    other.add_argument("--fold_count")
    other.add_argument("--json", action="store_true")
    good = sub.add_parser("good", description="keeps every rule")
    good.add_argument("--out", metavar="DIR", help="output folder: everything")
    good.add_argument("--device", default="auto")
    good.add_argument("--quiet", action="store_true")
    good.add_argument("--json", action="store_true")
    good.set_defaults(func=_bad_run)
    return root


PLANTED = {
    rule_description: ["facelivt bad: no description"],
    rule_banned_spellings: ["facelivt bad: --batch is spelled --batch-size in facelivt",
                            "facelivt bad: --no-progress is spelled --quiet in facelivt"],
    rule_device_auto: ["facelivt bad: --device defaults to 'cpu', not 'auto'"],
    rule_out_says_file_or_folder: ["facelivt bad: --out must have metavar FILE... with help saying 'file', or DIR "
                                   "with help saying 'folder' (metavar None, help 'where to write')"],
    rule_json: ["facelivt bad: no --json"],
    rule_quiet_where_progress: ["facelivt bad: shows progress but has no --quiet"],
    rule_one_spelling: ["one concept, several spellings: --fold-count, --fold_count"],
}


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.__name__)
def test_rule_refuses_a_planted_violation(rule):
    assert violations(_planted(), [rule]) == PLANTED[rule]


def test_every_rule_has_a_planted_violation():
    assert set(PLANTED) == set(RULES)


def test_a_command_without_progress_needs_no_quiet():
    root = argparse.ArgumentParser(prog="facelivt", description="root")
    p = root.add_subparsers().add_parser("still", description="prints a table")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_show_nothing)
    assert violations(root) == []
