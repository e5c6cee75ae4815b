"""Check the pinned constraints file (constraints.txt) against pyproject.toml and, with --installed, against
the running environment.

    python scripts/pins.py              # every requirement of pyproject.toml has a pin that satisfies it
    python scripts/pins.py --installed  # also: this environment holds exactly the pinned releases (CI's fresh venv)
    python scripts/pins.py --constraints other.txt ...

Exit status 1 with one line per problem when they disagree. tests/test_pins.py runs the first check;
.ci/run runs the second right after installing into its new virtual environment. Refresh the pins with
``bash scripts/refresh_pins.sh``.
"""
from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
CONSTRAINTS = REPO / "constraints.txt"
PYPROJECT = REPO / "pyproject.toml"
INSTALL_SH = REPO / "scripts" / "install.sh"
# Installed by the virtual environment itself or by pip's build isolation, never by the project.
TOOLING = {"pip", "setuptools", "wheel"}
PIN_LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)$")


@dataclass(frozen=True)
class Pin:
    name: str  # as written
    version: Version
    line: int


def read_pins(path: Path = CONSTRAINTS) -> tuple[dict[str, Pin], list[str]]:
    """``{canonical name: Pin}`` and the problems of the file (lines that are not ``name==version``, repeats)."""
    pins: dict[str, Pin] = {}
    problems: list[str] = []
    for number, raw in enumerate(Path(path).read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = PIN_LINE.match(line)
        if m is None:
            problems.append(f"{path.name}:{number}: not an exact pin 'name==version': {line!r}")
            continue
        try:
            version = Version(m.group(2))
        except InvalidVersion:
            problems.append(f"{path.name}:{number}: invalid version {m.group(2)!r}")
            continue
        key = canonicalize_name(m.group(1))
        if key in pins:
            problems.append(f"{path.name}:{number}: {m.group(1)} is pinned twice (also line {pins[key].line})")
        pins[key] = Pin(m.group(1), version, number)
    return pins, problems


def project_requirements(path: Path = PYPROJECT) -> list[tuple[str, Requirement]]:
    """``(where, requirement)`` for ``[project] dependencies`` and every optional extra."""
    project = tomllib.loads(Path(path).read_text())["project"]
    reqs = [("dependencies", Requirement(r)) for r in project.get("dependencies", [])]
    for extra, items in sorted(project.get("optional-dependencies", {}).items()):
        reqs += [(f"extra {extra!r}", Requirement(r)) for r in items]
    return reqs


def mtcnn_weights_pin(path: Path = INSTALL_SH) -> Requirement:
    """The ``facenet-pytorch==X`` that scripts/install.sh installs (with --no-deps, for its weight files)."""
    found = re.findall(r"facenet-pytorch==[0-9][^\s\"']*", Path(path).read_text())
    if len(found) != 1:
        raise ValueError(f"{path} should name exactly one facenet-pytorch==VERSION, found {found}")
    return Requirement(found[0])


def check_against_project(pins: dict[str, Pin], reqs: list[tuple[str, Requirement]], extra_reqs: list[Requirement] = ()) -> list[str]:
    """Every requirement (whose marker holds here) has a pin, and the pinned release satisfies its range."""
    problems = []
    for where, req in [*reqs, *(("scripts/install.sh", r) for r in extra_reqs)]:
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue  # e.g. python_version < "3.11": not part of this interpreter's environment
        pin = pins.get(canonicalize_name(req.name))
        if pin is None:
            problems.append(f"{req.name} ({where}: {req}) has no pin in constraints.txt")
        elif not req.specifier.contains(pin.version, prereleases=True):
            problems.append(f"{pin.name}=={pin.version} (constraints.txt:{pin.line}) does not satisfy {where}: {req}")
    return problems


def installed_versions() -> dict[str, str]:
    """``{canonical name: version}`` of the distributions importable from this interpreter, less pip's tooling."""
    found = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name and canonicalize_name(name) not in TOOLING:
            found.setdefault(canonicalize_name(name), dist.version)
    return found


def check_installed(pins: dict[str, Pin], installed: dict[str, str], project: str = "facelivt") -> list[str]:
    """The environment holds exactly the pinned releases: each pin installed at its version (a local build
    label such as ``+cpu`` is allowed, as ``==`` allows it) and nothing unpinned besides the project itself."""
    problems = []
    for key, pin in sorted(pins.items()):
        have = installed.get(key)
        if have is None:
            problems.append(f"{pin.name}=={pin.version} is pinned but not installed")
        elif not SpecifierSet(f"=={pin.version}").contains(Version(have), prereleases=True):
            problems.append(f"{pin.name} {have} is installed but {pin.version} is pinned")
    extra = sorted(set(installed) - set(pins) - {canonicalize_name(project)})
    problems += [f"{name} {installed[name]} is installed but has no pin" for name in extra]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--installed", action="store_true", help="also compare the pins with this environment")
    parser.add_argument("--constraints", type=Path, default=CONSTRAINTS, help="pin file (default: constraints.txt)")
    args = parser.parse_args(argv)
    pins, problems = read_pins(args.constraints)
    problems += check_against_project(pins, project_requirements(), [mtcnn_weights_pin()])
    if args.installed:
        problems += check_installed(pins, installed_versions())
    for p in problems:
        print(f"pins: {p}", file=sys.stderr)
    if not problems:
        print(f"pins: {len(pins)} pins of {args.constraints.name} agree with pyproject.toml" + (" and this environment" if args.installed else ""))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
