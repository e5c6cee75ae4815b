"""The pretrained zoo from the command line, as real processes against a local server speaking the Hugging
Face resolve protocol (tests/hf_server.py): verify with no --weights, models, download --out for an
offline machine, two processes at once, a full disk. Nothing here reaches the internet."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from disk_helpers import tmpfs
from hf_server import hub_server, released_bytes  # noqa: F401

from facelivt.models.pretrained import AUTHORS_REPO, DEFAULT_PRETRAINED

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
PHOTOS = sorted((SHARED / "data" / "celeba_subset" / "7201").glob("*.jpg"))[:2]


@pytest.fixture
def zoo(hub_server, tmp_path):  # noqa: F811
    hub_server.add_file(AUTHORS_REPO, "facelivt-s.pt", released_bytes(SHARED / "reference" / "official_facelivt_s.pt"))
    hub_server.add_file(AUTHORS_REPO, "facelivtv2-s.pt", released_bytes(SHARED / "reference" / "official_facelivtv2_s.pt"))
    hub_server.env = {"HF_ENDPOINT": hub_server.endpoint, "HF_HOME": str(tmp_path / "hf"),
                      "FACELIVT_HOME": str(tmp_path / "facelivt"), "HF_HUB_DOWNLOAD_TIMEOUT": "5"}
    return hub_server


def facelivt(*args: str, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "facelivt", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=timeout)


def test_verify_two_photos_with_no_weights_then_again_without_a_request(zoo):
    start = time.monotonic()
    proc = facelivt("verify", str(PHOTOS[0]), str(PHOTOS[1]), "--threads", "1", env=zoo.env)
    cold = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr
    assert f"model {DEFAULT_PRETRAINED}: pretrained {DEFAULT_PRETRAINED}" in proc.stderr
    assert "Glint360K" in proc.stderr and "CC-BY-SA-4.0" in proc.stderr
    line = proc.stdout.strip().splitlines()[-1]
    assert line.startswith("score ") and "uncalibrated default" in line  # the threshold says what it is
    zoo.reset_log()
    proc = facelivt("verify", str(PHOTOS[0]), str(PHOTOS[1]), "--json", "--threads", "1", env=zoo.env)
    assert proc.returncode == 0, proc.stderr
    assert zoo.requests == []  # the second run reads the facelivt cache only
    result = json.loads(proc.stdout)
    assert result["model"] == DEFAULT_PRETRAINED and "pretrained" in result["weights"]
    assert result["threshold_source"].startswith("uncalibrated default")
    # the authors' weights were trained on real faces (their model card says so): no warning, a verdict that stands
    assert result["reliable"] is True and result["warning"] is None and "real faces" not in proc.stderr
    print(f"cold cache to a verified pair: {cold:.1f} s")


def test_models_lists_the_zoo_and_the_cache(zoo):
    proc = facelivt("download", "facelivt_s", "--quiet", env=zoo.env)
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(facelivt("models", "--json", env=zoo.env).stdout)}
    assert rows["facelivt_s"]["cached"] and rows["facelivt_s"]["revision"] == zoo.commit(AUTHORS_REPO)
    assert rows["facelivt_s"]["sha256"] == zoo.sha256(AUTHORS_REPO, "facelivt-s.pt")
    assert not rows["facelivtv2_l"]["cached"] and rows["facelivtv2_l"]["published"]["ijbc"] == 96.59
    text = facelivt("models", env=zoo.env).stdout
    assert "authors' published figures" in text and f"revision {zoo.commit(AUTHORS_REPO)[:12]}" in text


def test_download_to_a_folder_for_a_machine_without_internet(zoo, tmp_path):
    carry = tmp_path / "carry"
    proc = facelivt("download", "facelivt_s", "--out", str(carry), "--quiet", env=zoo.env)
    assert proc.returncode == 0, proc.stderr
    assert "FACELIVT_HOME" in proc.stdout and (carry / "weights" / "facelivt_s.safetensors").is_file()
    again = facelivt("download", "facelivt_s", "--out", str(carry), "--json", env=zoo.env)  # cached: no download
    (record,) = json.loads(again.stdout)["weights"]
    assert record["path"] == str(carry / "weights" / "facelivt_s.safetensors")
    assert record["revision"] == zoo.commit(AUTHORS_REPO) and len(record["sha256"]) == 64
    offline = {"HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": str(tmp_path / "empty"),
               "FACELIVT_HOME": str(carry)}
    zoo.reset_log()
    proc = facelivt("verify", str(PHOTOS[0]), str(PHOTOS[1]), "--model", "facelivt_s", "--threads", "1", env=offline)
    assert proc.returncode == 0, proc.stderr
    proc = facelivt("verify", str(PHOTOS[0]), str(PHOTOS[1]), "--weights",
                    str(carry / "weights" / "facelivt_s.safetensors"), "--threads", "1", "--quiet",
                    env={**offline, "FACELIVT_HOME": str(tmp_path / "nothing")})
    assert proc.returncode == 0, proc.stderr
    assert zoo.requests == []
    # offline with nothing cached: one line that says what to download and where to put it
    proc = facelivt("verify", str(PHOTOS[0]), str(PHOTOS[1]), env={**offline, "FACELIVT_HOME": str(tmp_path / "nothing")})
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "facelivt download facelivtv2_s --out DIR" in proc.stderr


def test_two_processes_download_once_and_both_succeed(zoo):
    procs = [subprocess.Popen([sys.executable, "-m", "facelivt", "download", "facelivtv2_s", "--quiet"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, **zoo.env}) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert zoo.count("GET", "/blobs/") == 1
    paths = {out.split(": ")[1].split(" (")[0] for out, _ in outs}
    assert len(paths) == 1


def test_a_full_disk_while_downloading_leaves_no_partial_file(zoo, tmp_path):
    with tmpfs("8m") as small:  # the authors' FaceLiVT-S file is 20 MB
        proc = facelivt("download", "facelivt_s", "--quiet", env={**zoo.env, "HF_HOME": str(small)})
        assert proc.returncode == 2 and "disk is full" in proc.stderr, proc.stderr
        assert proc.stderr.count("\n") == 1
        assert not [p for p in small.rglob("*") if p.is_file() and p.stat().st_size > 0 and p.suffix != ".lock"]
    assert not (tmp_path / "facelivt" / "weights").exists() or not list((tmp_path / "facelivt" / "weights").iterdir())


def test_a_full_disk_while_converting_leaves_the_cache_as_it_was(zoo, tmp_path):
    with tmpfs("6m") as small:
        proc = facelivt("download", "facelivt_s", "--quiet", env={**zoo.env, "FACELIVT_HOME": str(small)})
        assert proc.returncode == 2 and "cannot write" in proc.stderr, proc.stderr
        assert sorted(p.name for p in (small / "weights").iterdir()) == []
    # the checked download stays in the Hugging Face cache: with room, no second download
    zoo.reset_log()
    proc = facelivt("download", "facelivt_s", "--quiet", env=zoo.env)
    assert proc.returncode == 0, proc.stderr
    assert zoo.count("GET", "/blobs/") == 0


def test_convert_and_eval_take_references(zoo, tmp_path):
    out = tmp_path / "s.safetensors"
    proc = facelivt("convert", "hf://novendrastywn/FaceLiVT/facelivt-s.pt", "--out", str(out), env=zoo.env)
    assert proc.returncode == 0 and "facelivt_s, train form" in proc.stdout, proc.stderr
