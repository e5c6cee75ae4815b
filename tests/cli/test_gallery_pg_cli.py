"""facelivt enroll / identify / gallery ... with a PostgreSQL URL instead of a folder (the ``pg_server``
fixture), on real aligned face crops and weights trained on real faces: a few photos only."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from image_helpers import ALIGNED

from facelivt.cli import main
from facelivt.inference import Gallery

REPO = Path(__file__).resolve().parents[2]
WEIGHTS = REPO / "tests" / "deploy" / "weights" / "facelivt_s_celeba.fp16.safetensors"
MODEL = ["--model", "facelivt_s", "--weights", str(WEIGHTS)]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def people() -> dict[str, list[Path]]:
    """Three photos each of two identities (real aligned crops)."""
    folders = [d for d in sorted(ALIGNED.iterdir()) if d.is_dir() and len(list(d.iterdir())) >= 3][:2]
    return {d.name: sorted(d.iterdir())[:3] for d in folders}


def _json(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


def test_enroll_identify_and_manage_a_gallery_by_url(pg_database, people, tmp_path, capsys):
    url = pg_database.replace("facelivt@", "facelivt:s3cret@") + "?gallery=staff"  # trust: the password is unused
    (a, fa), (b, fb) = people.items()
    for name, files in ((a, fa[:2]), (b, fb[:2])):
        assert main(["enroll", url, "--name", name, *map(str, files), "--aligned", "--quiet", "--json", *MODEL]) == 0
    out = _json(capsys)
    assert [o["identities"] for o in out] == [1, 2] and "s3cret" not in json.dumps(out)
    assert main(["enroll", url, "--name", a, str(fa[0]), "--aligned", "--quiet", "--json", *MODEL]) == 0
    assert _json(capsys)[0]["skipped_known"] == 1  # the photo it has, by content

    assert main(["identify", url, str(fa[2]), str(fb[2]), "--aligned", "--quiet", "--json", "-k", "2", *MODEL]) == 0
    found = _json(capsys)
    assert [r["matches"][0]["name"] for r in found] == [a, b]

    assert main(["gallery", "list", url, "--json"]) == 0
    listed = _json(capsys)[0]
    assert [(i["name"], i["embeddings"]) for i in listed["identities"]] == [(a, 2), (b, 2)]
    assert "s3cret" not in listed["gallery"] and "***" in listed["gallery"]
    assert main(["gallery", "show", url, a, "--json"]) == 0
    assert _json(capsys)[0]["sources"] == [str(p) for p in fa[:2]]
    assert main(["gallery", "rename", url, a, "alice"]) == 0
    assert main(["gallery", "export", url, "--out", str(tmp_path / "g.npz")]) == 0
    assert list(np.load(tmp_path / "g.npz")["identities"]) == ["alice", b]
    assert main(["gallery", "remove", url, b]) == 0
    assert main(["gallery", "check", url, "--json"]) == 0
    assert _json(capsys)[-1] | {"gallery": ""} == {"gallery": "", "identities": 1, "embeddings": 2, "problems": [],
                                                   "repaired": []}
    with Gallery.open(url) as g:
        assert g.names == ["alice"] and g.metadata["model"] == "facelivt_s"


def test_bad_urls_and_a_stopped_server_are_clear_errors(pg_server, pg_database, people, capsys):
    url = pg_database.replace("facelivt@", "facelivt:s3cret@")
    photo = str(next(iter(people.values()))[0])
    assert main(["identify", f"{url}?gallery=nobody", photo, "--aligned", *MODEL]) == 2
    err = capsys.readouterr().err
    assert "no gallery in postgresql://facelivt:***@" in err and "gallery=nobody" in err and "s3cret" not in err
    assert main(["gallery", "list", f"{url}?gallery=../etc"]) == 2
    assert "invalid gallery name" in capsys.readouterr().err
    assert main(["enroll", f"{url}?gallery=g", "--name", "x", photo, "--aligned", "--quiet", *MODEL]) == 0
    pg_server.stop()
    try:
        assert main(["gallery", "list", f"{url}?gallery=g"]) == 2
        err = capsys.readouterr().err
        assert "cannot connect to the gallery database" in err and "s3cret" not in err
    finally:
        pg_server.start()
    assert main(["gallery", "list", f"{url}?gallery=g", "--json"]) == 0
