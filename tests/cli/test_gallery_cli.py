"""facelivt enroll / identify on a gallery folder: several enroll processes at once, identify while
another process writes, a full disk (a real tmpfs), old two-file galleries, damaged galleries and bad
thresholds. Commands run in this process (``main``) except where several processes are the point."""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from disk_helpers import fill, listing, tmpfs
from gallery_helpers import HOLD_WRITE_LOCK, child_env, read_only, start_python, write_legacy_gallery

from image_helpers import ALIGNED

from facelivt.cli import main
from facelivt.inference import Gallery


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _errors(err: str) -> str:
    """``err`` without the warning about weights with no record of real-face training (which these
    untrained test weights get)."""
    return "".join(line for line in err.splitlines(keepends=True) if not line.startswith("warning: "))


@pytest.fixture(scope="module")
def crops() -> dict[str, list[Path]]:
    """Aligned crops of four identities."""
    people = sorted(d for d in ALIGNED.iterdir() if d.is_dir())[:4]
    return {d.name: sorted(d.iterdir()) for d in people}


def _enroll_cmd(gallery, name, files, weights):
    return [sys.executable, "-m", "facelivt", "enroll", str(gallery), "--name", name, *map(str, files),
            "--aligned", "--quiet", "--weights", str(weights)]


def test_enroll_processes_at_once_all_survive(tmp_path, crops, weights):
    """Before: two `facelivt enroll` processes on one gallery lost one enrolment in 3 of 3 trials."""
    gallery = tmp_path / "g"
    (a, fa), (b, fb) = list(crops.items())[:2]
    procs = [subprocess.Popen(_enroll_cmd(gallery, n, f[:2], weights), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=child_env()) for n, f in ((a, fa), (b, fb))]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    with Gallery.open(gallery) as g:  # both processes created the gallery at once: one did, both wrote
        assert sorted(g.names) == sorted([a, b]) and g.num_embeddings == 4


def test_identify_while_enroll_writes(tmp_path, crops, weights, capsys):
    gallery = tmp_path / "g"
    (a, fa), (b, fb) = list(crops.items())[:2]
    assert main(["enroll", str(gallery), "--name", a, str(fa[0]), "--aligned", "--quiet", "--weights", str(weights)]) == 0
    capsys.readouterr()
    holder = start_python(HOLD_WRITE_LOCK, gallery / "gallery.sqlite", 512)  # an enrolment in the middle of writing
    try:
        assert holder.stdout.readline().strip() == "locked"
        rc = main(["identify", str(gallery), str(fa[0]), "--aligned", "--json", "--weights", str(weights)])
        out = capsys.readouterr().out
        holder.stdin.write("go\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "committed"
    finally:
        holder.kill()
        holder.wait()
    assert rc == 0 and json.loads(out.splitlines()[0])["matches"][0]["name"] == a
    with Gallery.open(gallery) as g:
        assert g.names == [a, "held"]


def test_enroll_on_a_full_disk_changes_nothing(crops, weights, capsys):
    (a, fa), (b, fb) = list(crops.items())[:2]
    with tmpfs("600k") as mnt:
        gallery = mnt / "g"
        assert main(_enroll_cmd(gallery, a, fa[:1], weights)[3:]) == 0
        capsys.readouterr()
        before = listing(gallery)
        fill(mnt, leave=48_000)  # room for the log's index, not for 30 embeddings
        rc = main(_enroll_cmd(gallery, b, fb[:30], weights)[3:])
        (mnt / ".filler").unlink()
        err = _errors(capsys.readouterr().err)
        assert rc == 2 and err.count("\n") == 1, err  # one line
        assert err.startswith("facelivt enroll: error: cannot write ") and \
            "gallery.sqlite: database or disk is full; the gallery was not changed" in err
        after = listing(gallery)
        assert after["gallery.sqlite"] == before["gallery.sqlite"]
        assert set(after) - set(before) <= {"gallery.sqlite-wal", "gallery.sqlite-shm"}
        with Gallery.open(gallery) as g:
            assert g.names == [a] and g.num_embeddings == 1


def test_incomplete_old_gallery_is_refused(tmp_path, crops, weights, capsys):
    """Before: with gallery.json missing, enroll started a new gallery over the embeddings (4 became 1, exit 0)."""
    gallery = tmp_path / "g"
    write_legacy_gallery(gallery, ["x", "y"], np.eye(2, 512, dtype=np.float32).repeat(2, 0), np.array([0, 0, 1, 1]))
    (gallery / "gallery.json").unlink()
    before = listing(gallery)
    name, files = next(iter(crops.items()))
    for cmd in (["enroll", str(gallery), "--name", name, str(files[0])], ["identify", str(gallery), str(files[0])]):
        assert main([*cmd, "--aligned", "--quiet", "--weights", str(weights)]) == 2
        err = _errors(capsys.readouterr().err)
        assert "incomplete: embeddings.safetensors is there but gallery.json is missing" in err
    assert listing(gallery) == before


def test_old_gallery_is_imported_and_used(tmp_path, crops, weights, capsys):
    from facelivt.inference import FaceRecognizer

    rec = FaceRecognizer("facelivt_s", weights)
    (a, fa), (b, fb) = list(crops.items())[:2]
    emb = rec.embed(fa[:3], aligned=True)
    gallery = tmp_path / "g"
    meta = {"model": "facelivt_s", "weights_fingerprint": rec.weights_fingerprint, "flip": True, "threshold": 0.5,
            "threshold_source": "given"}
    write_legacy_gallery(gallery, [a], emb, np.zeros(3, np.int64), meta)
    assert main(["identify", str(gallery), str(fa[0]), "--aligned", "--json", "--weights", str(weights)]) == 0
    out = json.loads(capsys.readouterr().out.splitlines()[0])
    assert out["matches"][0]["name"] == a and out["threshold"] == 0.5
    assert main(["enroll", str(gallery), "--name", b, str(fb[0]), "--aligned", "--quiet", "--weights", str(weights)]) == 0
    with Gallery.open(gallery) as g:
        assert g.names == [a, b] and g.num_embeddings == 4  # imported once, then added to
        assert np.allclose(g.embeddings_of(a), emb, atol=1e-6)
    assert (gallery / "gallery.json.imported").is_file() and not (gallery / "gallery.json").exists()


def test_damaged_galleries_and_bad_thresholds_are_refused(tmp_path, crops, weights, capsys):
    name, files = next(iter(crops.items()))
    photo = str(files[0])
    common = ["--aligned", "--quiet", "--weights", str(weights)]
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "gallery.sqlite").write_bytes(os.urandom(4096))
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    con = sqlite3.connect(foreign / "gallery.sqlite")
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    floats = tmp_path / "float_labels"  # before: identify crashed with a TypeError
    write_legacy_gallery(floats, ["x"], np.eye(1, 512, dtype=np.float32), np.zeros(1, np.float32))
    nan = tmp_path / "nan"  # before: written by `enroll --threshold nan` and loaded silently
    write_legacy_gallery(nan, ["x"], np.eye(1, 512, dtype=np.float32), np.zeros(1, np.int64),
                         {"threshold": float("nan")})
    cases = [
        (["enroll", str(damaged), "--name", "n", photo], "damaged or not a facelivt gallery"),
        (["identify", str(damaged), photo], "damaged or not a facelivt gallery"),
        (["enroll", str(foreign), "--name", "n", photo], "an SQLite database but not a facelivt gallery"),
        (["identify", str(floats), photo], "labels must be integers"),
        (["identify", str(nan), photo], "threshold must be a finite cosine score"),
        (["enroll", str(tmp_path / "new"), "--name", "n", photo, "--threshold", "nan"], "--threshold must be a finite"),
        (["enroll", str(tmp_path / "new"), "--name", "n", photo, "--threshold", "-1"], "--threshold must be a finite"),
        (["identify", str(damaged), photo, "--threshold", "nan"], "--threshold must be a finite"),
        (["verify", photo, photo, "--threshold", "nan"], "--threshold must be a finite"),
        (["verify", photo, photo, "--threshold", "1.5"], "--threshold must be a finite"),
    ]
    for cmd, match in cases:
        before = {p: listing(p) for p in (damaged, foreign, floats, nan)}
        assert main([*cmd, *common]) == 2, cmd
        err = _errors(capsys.readouterr().err)
        assert match in err and err.count("\n") == 1 and "Traceback" not in err, (cmd, err)
        assert {p: listing(p) for p in before} == before
    assert not (tmp_path / "new").exists()


def _facelivt(*args) -> subprocess.CompletedProcess:
    """`facelivt ARGS` as a real process running this worktree's code."""
    return subprocess.run([sys.executable, "-m", "facelivt", *map(str, args)], capture_output=True, text=True,
                          env=child_env(), timeout=300)


def test_identity_deleted_by_the_sqlite3_tool_is_reported_and_repaired(tmp_path, crops, weights, capsys):
    """Before: after `DELETE FROM identities` in the sqlite3 tool, identify and enroll died with a KeyError
    traceback."""
    gallery = tmp_path / "g"
    (a, fa), (b, fb), (c, fc) = list(crops.items())[:3]
    for name, files in ((a, fa[:2]), (b, fb[:2])):
        assert main(_enroll_cmd(gallery, name, files, weights)[3:]) == 0
    con = sqlite3.connect(gallery / "gallery.sqlite")  # foreign keys are off, as in the sqlite3 tool
    con.execute("DELETE FROM identities WHERE name = ?", (b,))
    con.commit()
    con.close()
    capsys.readouterr()
    common = ["--aligned", "--quiet", "--weights", str(weights)]
    for cmd in (["identify", str(gallery), str(fa[0])], ["enroll", str(gallery), "--name", c, str(fc[0])]):
        assert main([*cmd, *common]) == 2
        err = _errors(capsys.readouterr().err)
        assert err.count("\n") == 1 and "Traceback" not in err, err
        assert "2 embeddings belong to no identity" in err and f"facelivt gallery check {gallery} --repair" in err
    check = _facelivt("gallery", "check", gallery)
    assert check.returncode == 1, check
    assert "problem: 2 embeddings belong to no identity" in check.stdout
    assert "1 identities, 4 embeddings" in check.stdout
    repair = _facelivt("gallery", "check", gallery, "--repair")
    assert repair.returncode == 0, repair
    assert "removed: 2 embeddings belong to no identity" in repair.stdout and "no problems" in repair.stdout
    assert main(["identify", str(gallery), str(fa[0]), "--json", *common]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["matches"][0]["name"] == a
    assert main([*_enroll_cmd(gallery, c, fc[:1], weights)[3:]]) == 0
    with Gallery.open(gallery) as g:
        assert g.names == [a, c] and g.num_embeddings == 3


def test_gallery_check_refuses_what_is_not_a_gallery(tmp_path):
    (tmp_path / "damaged").mkdir()
    (tmp_path / "damaged" / "gallery.sqlite").write_bytes(os.urandom(4096))
    for folder, match in ((tmp_path / "none", "no gallery in"), (tmp_path / "damaged", "damaged or not a facelivt")):
        proc = _facelivt("gallery", "check", folder, "--repair")
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc
        assert proc.stderr.startswith("facelivt gallery: error: ") and match in proc.stderr
    assert not (tmp_path / "none").exists()


def test_identify_in_a_read_only_folder(tmp_path, crops, weights, capsys):
    """Before: `facelivt identify` on a gallery in a read-only folder (a read-only mount: permission bits
    do not stop root) failed: "cannot read gallery ...: unable to open database file"."""
    gallery = tmp_path / "g"
    (a, fa), (b, fb) = list(crops.items())[:2]
    for name, files in ((a, fa[:1]), (b, fb[:1])):
        assert main(_enroll_cmd(gallery, name, files, weights)[3:]) == 0
    capsys.readouterr()
    with read_only(gallery) as view:
        before = listing(view)
        common = ["--aligned", "--quiet", "--weights", str(weights)]
        assert main(["identify", str(view), str(fb[0]), "--json", *common]) == 0
        assert json.loads(capsys.readouterr().out.splitlines()[0])["matches"][0]["name"] == b
        check = _facelivt("gallery", "check", view)
        assert check.returncode == 0 and "2 identities, 2 embeddings; no problems" in check.stdout, check
        assert main(_enroll_cmd(view, "c", fa[1:2], weights)[3:]) == 2
        err = _errors(capsys.readouterr().err)
        assert err.count("\n") == 1, err
        assert err.startswith(f"facelivt enroll: error: cannot write {view}/gallery.sqlite"), err
        assert listing(view) == before


@pytest.mark.parametrize("leave", [0, 48_000])
def test_enroll_into_a_new_gallery_on_a_full_disk_leaves_nothing(crops, weights, capsys, leave):
    """Before: it said "the gallery was not changed" but left a new empty gallery on the full disk
    (gallery.sqlite, and its log's files; with 0 bytes left an empty gallery.sqlite)."""
    name, files = next(iter(crops.items()))
    with tmpfs("600k") as mnt:
        fill(mnt, leave)
        rc = main(_enroll_cmd(mnt / "g", name, files[:3], weights)[3:])
        (mnt / ".filler").unlink()
        err = _errors(capsys.readouterr().err)
        assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err, err
        assert err.startswith(f"facelivt enroll: error: cannot write {mnt}/g") and "full" in err, err
        assert list(mnt.iterdir()) == []  # not even the folder it made
        assert main(_enroll_cmd(mnt / "g", name, files[:3], weights)[3:]) == 0  # with room, it is made
        with Gallery.open(mnt / "g") as g:
            assert g.names == [name] and g.num_embeddings == 3


def test_enroll_run_again_after_a_kill_adds_only_what_is_missing(tmp_path, crops, weights, capsys):
    """Before: running an enroll killed half way again duplicated the identities it had kept (identity
    7201: 60 = 2 x 30 embeddings)."""
    root, gallery = tmp_path / "root", tmp_path / "g"
    people = dict(list(crops.items())[:3])
    for name, files in people.items():
        (root / name).mkdir(parents=True)
        for f in files[:6]:
            shutil.copy(f, root / name / f.name)
    proc = subprocess.Popen([sys.executable, "-m", "facelivt", "enroll", str(gallery), str(root), "--aligned",
                             "--quiet", "--weights", str(weights), "--threads", "1"], env=child_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not (gallery / "gallery.sqlite").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)  # the gallery appears with its first identity
    finally:
        proc.kill()
        proc.wait()
    with Gallery.open(gallery, readonly=True) as g:
        kept = g.num_embeddings
        assert kept > 0 and all(len(g.embeddings_of(n)) == 6 for n in g.names)
    capsys.readouterr()
    assert main(["enroll", str(gallery), str(root), "--aligned", "--quiet", "--weights", str(weights)]) == 0
    out = capsys.readouterr().out
    assert f"enrolled {18 - kept} images" in out and f"skipped {kept} photos it already had" in out, out
    with Gallery.open(gallery) as g:
        assert sorted(g.names) == sorted(people) and {len(g.embeddings_of(n)) for n in g.names} == {6}
    assert main(["enroll", str(gallery), "--name", next(iter(people)), str(root / next(iter(people))),
                 "--aligned", "--quiet", "--weights", str(weights)]) == 0  # all there: nothing to add, no error
    assert "enrolled 0 images of 0 identities; skipped 6 photos" in capsys.readouterr().out
