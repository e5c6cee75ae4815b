"""Defaults that travel (issue 22, item 6): no default path of the package or of the shipped configs
points outside the installed package or the user's working folder (such as this checkout's
``../shared/data``); what needs sample faces uses the bundled synthetic ones or says what to pass
(``tests/cli/test_export_bench_cli.py``: export without --data; ``tests/training/test_train_config.py``:
a config's missing data folder)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# A path that leaves the working folder (``../``, or ``/ ".."`` joined), names this checkout's shared
# folder, or is absolute into a machine's own folders.
OUTSIDE = re.compile(r"\.\./|/\s*[\"']\.\.[\"']|\bshared/data\b|[\"']shared[\"']"
                     r"|(?<![\w.])/(?:work|home|tmp|root|Users|mnt|data)/")


def _outside_paths(files, base: Path = REPO) -> list[str]:
    return [f"{path.relative_to(base)}:{n}: {line.strip()}" for path in files
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if OUTSIDE.search(line)]


def test_the_package_names_no_path_outside_itself_or_the_working_folder():
    files = sorted(p for p in (REPO / "facelivt").rglob("*") if p.suffix in (".py", ".yaml", ".yml", ".json"))
    assert len(files) > 50
    assert _outside_paths(files) == []


def test_the_configs_name_no_path_outside_the_working_folder():
    files = sorted((REPO / "configs").glob("*.y*ml"))
    assert files
    assert _outside_paths(files) == []


@pytest.mark.parametrize("line", ["root: ../shared/data/celeba_subset_112", "default='/work/shared/x'",
                                  'help="e.g. shared/data/celeba"', "p = '/home/me/faces'",
                                  'Path.cwd() / ".." / "shared" / CROPS_SUBDIR'])
def test_the_check_sees_a_path_outside(tmp_path, line):
    planted = tmp_path / "planted.yaml"
    planted.write_text(f"# data/faces and ./runs are fine\n{line}\n", encoding="utf-8")
    assert _outside_paths([planted], tmp_path) == [f"planted.yaml:2: {line}"]
