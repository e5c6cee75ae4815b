"""facelivt gallery list / show / rename / remove / export on a gallery enrolled from real aligned crops;
unknown and taken names, a missing gallery and a read-only folder give one clear line and exit code 2."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from disk_helpers import listing
from gallery_helpers import read_only
from image_helpers import ALIGNED

from facelivt.cli import main
from facelivt.inference import Gallery


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def enrolled(tmp_path_factory, weights) -> Path:
    """A gallery of three people, two photos each."""
    gallery = tmp_path_factory.mktemp("g") / "gallery"
    for person in sorted(d for d in ALIGNED.iterdir() if d.is_dir())[:3]:
        photos = sorted(person.iterdir())[:2]
        assert main(["enroll", str(gallery), "--name", f"p{person.name}", *map(str, photos), "--aligned", "--quiet",
                     "--weights", str(weights), "--threads", "1"]) == 0
    return gallery


@pytest.fixture
def gallery(enrolled, tmp_path) -> Path:
    """A copy of the enrolled gallery that a test may change."""
    copy = tmp_path / "gallery"
    copy.mkdir()
    (copy / "gallery.sqlite").write_bytes((enrolled / "gallery.sqlite").read_bytes())
    return copy


def _names(gallery: Path) -> list[str]:
    with Gallery.open(gallery, readonly=True) as g:
        return g.names


def test_list_and_show(gallery, capsys):
    names = _names(gallery)
    assert main(["gallery", "list", str(gallery), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["identities"]
    assert [(p["name"], p["embeddings"], p["photos"]) for p in listed] == [(n, 2, 2) for n in names]
    assert main(["gallery", "list", str(gallery)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["identity", "embeddings", "photos", "added"] and [l.split()[0] for l in out[1:]] == names
    assert main(["gallery", "show", str(gallery), names[0], "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["name"] == names[0] and shown["embeddings"] == 2 and len(shown["sources"]) == 2
    assert all(Path(s).parent.name == names[0][1:] for s in shown["sources"])
    assert shown["gallery_metadata"]["model"] == "facelivt_s"
    assert main(["gallery", "show", str(gallery), names[0]]) == 0
    assert f"identity: {names[0]}" in capsys.readouterr().out


def test_rename_then_remove_then_export(gallery, tmp_path, capsys):
    a, b, c = _names(gallery)
    assert main(["gallery", "rename", str(gallery), a, "alice"]) == 0
    assert _names(gallery) == ["alice", b, c]
    assert main(["gallery", "remove", str(gallery), b]) == 0
    assert _names(gallery) == ["alice", c]
    assert sorted(p.name for p in gallery.iterdir()) == ["gallery.sqlite"]  # log emptied and closed
    capsys.readouterr()
    out = tmp_path / "e.npz"
    assert main(["gallery", "export", str(gallery), "--out", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"file": str(out), "identities": 2, "embeddings": 4, "dim": 512}
    with np.load(out) as z:
        assert list(z["names"]) == ["alice", "alice", c, c] and z["embeddings"].shape == (4, 512)
        np.testing.assert_allclose(np.linalg.norm(z["embeddings"], axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("args,message", [
    (["rename", "{g}", "nobody", "x"], "identity 'nobody' is not in the gallery"),
    (["rename", "{g}", "{a}", "{b}"], "is in the gallery already"),
    (["show", "{g}", "nobody"], "identity 'nobody' is not in the gallery"),
    (["remove", "{g}", "{a}", "nobody"], "identity 'nobody' is not in the gallery"),
    (["export", "{g}", "--out", "{g}/e.csv"], "ending in .npz"),
    (["export", "{g}", "--out", "{g}/gallery.sqlite"], "it is the input"),
    (["list", "{g}/missing"], "no gallery in"),
])
def test_bad_input_changes_nothing(gallery, args, message, capsys):
    a, b, _ = _names(gallery)
    before = listing(gallery)
    rc = main(["gallery", *[x.format(g=gallery, a=a, b=b) for x in args]])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("facelivt gallery: error: ") and message in err and err.count("\n") == 1, err
    assert listing(gallery) == before and _names(gallery) == [a, b, _]


def test_read_only_folder(gallery, capsys):
    names = _names(gallery)
    with read_only(gallery) as view:
        assert main(["gallery", "list", str(view), "--json"]) == 0
        assert [p["name"] for p in json.loads(capsys.readouterr().out)["identities"]] == names
        for args in (["rename", names[0], "x"], ["remove", names[0]]):
            assert main(["gallery", args[0], str(view), *args[1:]]) == 2
            err = capsys.readouterr().err
            assert err.startswith(f"facelivt gallery: error: cannot write {view}/gallery.sqlite"), err
    assert _names(gallery) == names
