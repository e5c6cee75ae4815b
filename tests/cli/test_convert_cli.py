"""``facelivt convert``: output named by its format, inputs read by content, planted pickles
refused as unsafe, atomic output with the usual mode, a full disk reported in one line."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import torch
from disk_helpers import assert_clean_failure, listing, run_cli, tmpfs
from model_helpers import register_tiny

from facelivt import create_model
from facelivt.cli import main
from facelivt.models import CalibratedThreshold, ModelCard, TrainingData, load_model, read_card, save_weights

RELEASED = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "official_facelivt_s.pt"


class Planted:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _same_weights(a: Path, b: Path) -> None:
    x = torch.randn(1, 3, 112, 112, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(load_model("facelivt_s", a, deploy=False)(x), load_model("facelivt_s", b, deploy=False)(x))


def test_output_not_named_safetensors_is_refused(tmp_path, capsys):
    """Before, ``convert IN --out OUT.pt`` wrote safetensors bytes under the .pt name (replacing an existing OUT.pt)."""
    (tmp_path / "out.pt").write_bytes(b"an earlier file")
    proc = run_cli("convert", str(RELEASED), "--out", str(tmp_path / "out.pt"), "--model", "facelivt_s")
    assert_clean_failure(proc)
    assert (f"refusing to write {tmp_path / 'out.pt'}: convert writes safetensors, so --out must end in .safetensors "
            "(it has '.pt';") in proc.stderr
    assert main(["convert", str(RELEASED), "--out", str(tmp_path / "out"), "--model", "facelivt_s"]) == 2
    assert "(it has no suffix;" in capsys.readouterr().err
    assert listing(tmp_path) == {"out.pt": b"an earlier file"}


def test_input_read_by_content_and_output_mode(tmp_path):
    """A safetensors file named .pt converts (before: refused as a pickle asking for objects); the output
    is created 0o666 less the umask (before: 0600, the mode of safetensors' own temporary file)."""
    torch.manual_seed(0)
    save_weights(create_model("facelivt_s").eval(), tmp_path / "w.safetensors")
    renamed, out = tmp_path / "w.pt", tmp_path / "out.safetensors"
    os.replace(tmp_path / "w.safetensors", renamed)
    old = os.umask(0o022)
    try:
        proc = run_cli("convert", str(renamed), "--out", str(out), "--model", "facelivt_s")
    finally:
        os.umask(old)
    assert proc.returncode == 0, proc.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.safetensors", "w.pt"]
    _same_weights(renamed, out)


def test_planted_pickle_is_refused_as_unsafe(tmp_path):
    """Before: torch's 'Weights only load failed ... Re-running torch.load with weights_only set to False
    will likely succeed' advice, i.e. a hint to run the planted code."""
    marker = tmp_path / "ran"
    torch.save({"format": "facelivt-train-checkpoint", "model": Planted(marker)}, tmp_path / "rank0.pt")
    proc = run_cli("convert", str(tmp_path / "rank0.pt"), "--out", str(tmp_path / "out.safetensors"), "--model", "facelivt_s")
    assert_clean_failure(proc)
    assert (f"refusing to load {tmp_path / 'rank0.pt'} as unsafe: it is not a plain-tensor checkpoint "
            f"(it asks to run code: {os.system.__module__}.system)") in proc.stderr
    assert "weights_only" not in proc.stderr
    assert not marker.exists() and not (tmp_path / "out.safetensors").exists()


def test_text_file_input(tmp_path):
    (tmp_path / "notes.pt").write_text("not weights\n")
    proc = run_cli("convert", str(tmp_path / "notes.pt"), "--out", str(tmp_path / "out.safetensors"), "--model", "facelivt_s")
    assert_clean_failure(proc)
    assert "notes.pt is neither a safetensors file nor a torch checkpoint (it starts with b'not weights\\n'" \
        in proc.stderr


def test_full_disk_leaves_the_old_output(tmp_path):
    with tmpfs("2m") as disk:
        out = disk / "s.safetensors"
        out.write_bytes(b"the previous conversion")
        before = listing(disk)
        proc = run_cli("convert", str(RELEASED), "--out", str(out), "--model", "facelivt_s")
        assert_clean_failure(proc)
        assert f"cannot write {out}: No space left on device" in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert listing(disk) == before  # no partial or temporary file, the old output unchanged


def test_the_output_keeps_the_inputs_model_card_and_says_where_it_came_from(tmp_path, monkeypatch, capsys):
    register_tiny(monkeypatch, "convert_tiny")
    card = ModelCard(training=TrainingData("my photos", faces="real", identities=5),
                     threshold=CalibratedThreshold(0.35, "best-accuracy", "my pairs"), provenance="trained here")
    src, out = tmp_path / "w.safetensors", tmp_path / "deploy.safetensors"
    save_weights(create_model("convert_tiny").eval(), src, card=card)
    assert main(["convert", str(src), "--out", str(out), "--deploy"]) == 0
    converted = read_card(out)
    assert converted.training == card.training and converted.threshold == card.threshold
    assert converted.model == "convert_tiny"
    assert converted.provenance == f"converted by facelivt convert from {src}; trained here"
    bare = tmp_path / "bare.safetensors"
    save_weights(create_model("convert_tiny").eval(), bare)
    assert main(["convert", str(bare), "--out", str(tmp_path / "bare2.safetensors")]) == 0
    assert read_card(tmp_path / "bare2.safetensors").faces == "unknown"  # nothing recorded is not made up
