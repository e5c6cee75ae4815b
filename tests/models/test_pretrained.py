"""The pretrained zoo against a local server speaking the Hugging Face resolve protocol (tests/hf_server.py),
serving files exactly like the authors' releases, built from ../shared/reference (plain state_dicts with
known outputs). Nothing here reaches the internet."""
from __future__ import annotations

import hashlib
import io
import os
import pickle
from pathlib import Path

import pytest
import torch
from hf_server import fast_hf_client, hub_server, released_bytes  # noqa: F401

from facelivt.inference import FaceRecognizer
from facelivt.models import (
    PRETRAINED,
    DownloadError,
    IntegrityError,
    cached_weights,
    create_model,
    fetch_weights,
    list_models,
    load_model,
)
from facelivt.models.card import read_card
from facelivt.models.hub import parse_weights_ref
from facelivt.models.pretrained import AUTHORS_REPO, DEFAULT_PRETRAINED
from facelivt.training.config import load_config, validate_config
from facelivt.training.engine import build_model as build_student

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
REF_S = SHARED / "reference" / "official_facelivt_s.pt"
REF_V2 = SHARED / "reference" / "official_facelivtv2_s.pt"


@pytest.fixture
def zoo(hub_server, monkeypatch, tmp_path):  # noqa: F811
    """The authors' repository on the local server with facelivt-s.pt and facelivtv2-s.pt; the environment
    points huggingface_hub and the facelivt cache at it and at fresh folders."""
    hub_server.add_file(AUTHORS_REPO, "facelivt-s.pt", released_bytes(REF_S))
    hub_server.add_file(AUTHORS_REPO, "facelivtv2-s.pt", released_bytes(REF_V2))
    monkeypatch.setenv("HF_ENDPOINT", hub_server.endpoint)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("FACELIVT_HOME", str(tmp_path / "facelivt"))
    fast_hf_client(monkeypatch)
    hub_server.home = tmp_path / "facelivt"
    hub_server.hf = tmp_path / "hf" / "hub"
    return hub_server


def _reference(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def _blobs(hf: Path) -> list[str]:
    return sorted(p.name for p in hf.rglob("blobs/*")) if hf.exists() else []


def _weights(home: Path) -> list[str]:
    folder = home / "weights"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# ---------------------------------------------------------------------------------------------- the table
def test_every_released_checkpoint_has_an_entry_for_a_registered_variant():
    assert list_models(pretrained=True) == sorted(PRETRAINED)
    assert set(PRETRAINED) == {"facelivt_s", "facelivt_m", "facelivtv2_xs", "facelivtv2_s", "facelivtv2_m", "facelivtv2_l"}
    assert DEFAULT_PRETRAINED in PRETRAINED
    for name, entry in PRETRAINED.items():
        assert entry.variant in list_models() and entry.repo_id == AUTHORS_REPO
        assert entry.filename == name.replace("_", "-") + ".pt"
        assert entry.licence and entry.trained_on == "Glint360K" and "authors" in entry.accuracy.source
        assert entry.accuracy.figures()["lfw"] > 99  # every entry carries at least the published LFW figure
        assert entry.sha256 is None  # nothing was verified against the real files here: nothing pinned


def test_references_parse():
    ref = parse_weights_ref("hf://me/my-faces@v1/sub/ft.pt")
    assert (ref.kind, ref.repo_id, ref.revision, ref.filename) == ("hf", "me/my-faces", "v1", "sub/ft.pt")
    ref = parse_weights_ref("https://huggingface.co/me/my-faces/resolve/main/ft.safetensors")
    assert (ref.kind, ref.repo_id, ref.revision, ref.filename) == ("hf", "me/my-faces", "main", "ft.safetensors")
    assert parse_weights_ref("https://example.org/w.pt#sha256=" + "a" * 64).sha256 == "a" * 64
    assert parse_weights_ref("facelivt_s").kind == "pretrained"
    with pytest.raises(FileNotFoundError):
        parse_weights_ref("no/such/file.pt")
    with pytest.raises(ValueError, match="pretrained name"):
        parse_weights_ref("facelivt_xl")
    with pytest.raises(ValueError, match="hf://owner/repo"):
        parse_weights_ref("hf://just-a-name")
    with pytest.raises(ValueError, match="sha256"):
        parse_weights_ref("https://example.org/w.pt#md5=00")


# ---------------------------------------------------------------------------------------------- one call
@pytest.mark.parametrize("name, ref_path", [("facelivt_s", REF_S), ("facelivtv2_s", REF_V2)])
def test_pretrained_models_reproduce_the_reference_and_load_from_cache(zoo, name, ref_path):
    ref = _reference(ref_path)
    model = create_model(name, pretrained=True)
    assert model.training  # train form, for fine-tuning
    with torch.no_grad():
        out = model.eval()(ref["input"])
    assert torch.allclose(out, ref["output"], atol=1e-5), (out - ref["output"]).abs().max()
    record = cached_weights(name).record
    filename = PRETRAINED[name].filename
    assert record["revision"] == zoo.commit(AUTHORS_REPO) and record["sha256"] == zoo.sha256(AUTHORS_REPO, filename)
    assert record["sha256"] == hashlib.sha256(released_bytes(ref_path)).hexdigest()
    assert {"size", "sha256", "weights_only", "finite"} <= set(record["checks"])
    zoo.reset_log()
    deploy = load_model(name, pretrained=True)  # the second load: from the facelivt cache, no request at all
    assert zoo.requests == []
    with torch.no_grad():
        assert torch.allclose(deploy(ref["input"]), ref["output_deploy"], atol=1e-5)
    assert f"pretrained {name}" in deploy.weights_source and "Glint360K" in deploy.weights_source


def test_the_cache_holds_safetensors_so_no_pickle_is_read_twice(zoo, monkeypatch):
    fetch_weights("facelivt_s")
    cached = cached_weights("facelivt_s")
    assert cached.path.suffix == ".safetensors" and cached.path.read_bytes()[8:9] == b"{"
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("a pickle was read again"))
    load_model("facelivt_s", "facelivt_s")  # a pretrained name as the weights argument


def test_fine_tuning_starts_from_the_pretrained_weights(zoo):
    cfg = load_config(None, ["model.name=facelivt_s", "model.pretrained=true", "data.type=synthetic"])
    student = build_student(cfg)
    ref = _reference(REF_S)
    with torch.no_grad():
        assert torch.allclose(student.eval()(ref["input"]), ref["output"], atol=1e-5)
    with pytest.raises(ValueError, match="not both"):
        cfg.model.weights = "x.safetensors"
        validate_config(cfg, need_data=False)


def test_a_users_own_repository_and_plain_https(zoo, tmp_path):
    ref = _reference(REF_S)
    zoo.add_file("someone/finetuned", "ckpt/facelivt-s.pt", released_bytes(REF_S))
    model = load_model("facelivt_s", "hf://someone/finetuned/ckpt/facelivt-s.pt", deploy=False)
    with torch.no_grad():
        assert torch.allclose(model(ref["input"]), ref["output"], atol=1e-5)
    url = f"{zoo.endpoint}/someone/finetuned/resolve/main/ckpt/facelivt-s.pt"
    assert parse_weights_ref(url).kind == "hf"  # the resolve URL of the endpoint is a Hugging Face reference
    # any server: the size checked, the sha256 pinned by the URL's fragment (or declared by the server)
    data = released_bytes(REF_S)
    plain = zoo.add_plain("files/facelivt-s.pt", data)
    model = load_model("facelivt_s", plain + "#sha256=" + hashlib.sha256(data).hexdigest(), deploy=False)
    with torch.no_grad():
        assert torch.allclose(model(ref["input"]), ref["output"], atol=1e-5)
    wrong = zoo.add_plain("files/other.pt", data)
    with pytest.raises(IntegrityError, match="sha256 mismatch") as err:
        fetch_weights(wrong + "#sha256=" + "0" * 64, "facelivt_s")
    assert err.value.check == "sha256" and not list((zoo.home / "downloads").glob("*"))


def test_the_variant_is_read_from_the_file_when_not_given(zoo):
    assert fetch_weights("hf://novendrastywn/FaceLiVT/facelivtv2-s.pt").variant == "facelivtv2_s"
    with pytest.raises(ValueError, match="facelivt_s.*not 'facelivt_m'|not 'facelivt_m'"):
        load_model("facelivt_m", "facelivt_s")


# ---------------------------------------------------------------------------------------------- integrity
def test_corrupted_download_is_refused_and_deleted_then_a_retry_succeeds(zoo):
    zoo.set_fault(AUTHORS_REPO, "facelivt-s.pt", "corrupt")
    with pytest.raises(IntegrityError, match="sha256 mismatch.*deleted from the cache") as err:
        create_model("facelivt_s", pretrained=True)
    assert err.value.check == "sha256"
    assert _blobs(zoo.hf) == [] and _weights(zoo.home) == []
    zoo.set_fault(AUTHORS_REPO, "facelivt-s.pt", None)
    create_model("facelivt_s", pretrained=True)
    assert _weights(zoo.home) == ["facelivt_s.json", "facelivt_s.safetensors"]


def test_truncated_download_leaves_nothing_half_written(zoo):
    zoo.set_fault(AUTHORS_REPO, "facelivt-s.pt", "truncate")
    with pytest.raises(DownloadError, match="cut short"):
        fetch_weights("facelivt_s")
    assert not [p for p in zoo.hf.rglob("*") if p.name.endswith(".incomplete")]
    assert _blobs(zoo.hf) == [] and _weights(zoo.home) == []


def test_a_file_of_another_variant_is_refused(zoo):
    zoo.add_file(AUTHORS_REPO, "facelivt-m.pt", released_bytes(REF_S))  # an S file under the M name
    with pytest.raises(IntegrityError, match="does not fit facelivt_m") as err:
        fetch_weights("facelivt_m")
    assert err.value.check == "variant" and _blobs(zoo.hf) == [] and _weights(zoo.home) == []


class _RunsCode:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_asks_to_run_code_is_refused_and_nothing_runs(zoo, tmp_path):
    marker = tmp_path / "ran"
    buffer = io.BytesIO()
    torch.save({"stem.weight": torch.zeros(1), "payload": _RunsCode(str(marker))}, buffer, pickle_module=pickle)
    zoo.add_file(AUTHORS_REPO, "facelivtv2-xs.pt", buffer.getvalue())
    with pytest.raises(IntegrityError, match="unsafe") as err:
        fetch_weights("facelivtv2_xs")
    assert err.value.check == "weights_only" and not marker.exists()
    assert _blobs(zoo.hf) == [] and _weights(zoo.home) == []


def test_non_finite_weights_are_refused(zoo):
    state = torch.load(REF_S, weights_only=True)["state_dict"]
    state = {k: v.clone() for k, v in state.items()}
    key = next(k for k, v in state.items() if v.is_floating_point())
    state[key].view(-1)[0] = float("nan")
    buffer = io.BytesIO()
    torch.save(state, buffer)
    zoo.add_file(AUTHORS_REPO, "facelivt-m.pt", buffer.getvalue())
    with pytest.raises(IntegrityError, match="NaN") as err:
        fetch_weights("hf://novendrastywn/FaceLiVT/facelivt-m.pt", "facelivt_s")
    assert err.value.check == "finite" and _weights(zoo.home) == []


def test_a_damaged_cache_entry_is_fetched_again(zoo):
    path = fetch_weights("facelivt_s").path
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    assert cached_weights("facelivt_s") is None  # checked against its record, removed
    zoo.reset_log()
    assert fetch_weights("facelivt_s").path == path
    assert zoo.count("GET") == 0  # the download itself was still in the Hugging Face cache


# ---------------------------------------------------------------------------------------------- failures
@pytest.mark.parametrize("status, words", [(404, "does not exist"), (401, "HF_TOKEN"), (403, "HF_TOKEN"),
                                           (500, "try again later"), (503, "try again later")])
def test_http_errors_say_what_to_do(zoo, status, words):
    zoo.set_fault(AUTHORS_REPO, "facelivt-s.pt", status)
    with pytest.raises(DownloadError, match=words):
        fetch_weights("facelivt_s")
    assert _weights(zoo.home) == []


def test_connection_refused_and_offline_say_what_to_download_and_where(zoo, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    with pytest.raises(DownloadError, match="connection refused.*facelivt download facelivt_s --out DIR"):
        fetch_weights("facelivt_s")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DownloadError, match=r"HF_HUB_OFFLINE.*FACELIVT_HOME=DIR.*weights/facelivt_s.safetensors"):
        fetch_weights("facelivt_s")


def test_offline_with_a_cache_makes_no_request(zoo, monkeypatch):
    fetch_weights("facelivtv2_s")
    zoo.reset_log()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    rec = FaceRecognizer()  # the default pretrained model
    assert rec.model_name == DEFAULT_PRETRAINED and "pretrained facelivtv2_s" in rec.weights_source
    assert rec.weights_fingerprint == zoo.sha256(AUTHORS_REPO, "facelivtv2-s.pt")[:16]
    assert zoo.requests == []


def test_the_cache_entry_carries_the_tables_model_card_and_a_calibration_goes_beside_it(zoo):
    cached = fetch_weights("facelivt_s")
    card = read_card(cached.path)
    assert card.model == "facelivt_s" and card.faces == "real" and card.training.dataset == "Glint360K"
    assert card.heldout.set == "LFW" and card.heldout.value == PRETRAINED["facelivt_s"].accuracy.lfw
    assert "authors' release" in card.provenance and card.threshold is None and card.warning() is None
    rec = FaceRecognizer("facelivt_s")
    assert rec.card == card and rec.warning is None and rec.reliable
    assert rec.threshold_source.startswith("uncalibrated")  # the authors publish no threshold
    crops = sorted((SHARED / "data" / "celeba_subset_112" / "7201").iterdir())[:2]
    other = sorted((SHARED / "data" / "celeba_subset_112" / "7202").iterdir())[0]
    cal = rec.calibrate([(crops[0], crops[1], True), (crops[0], other, False)], aligned=True)
    written = rec.save_calibration(cal, "three crops")
    assert written == cached.path.with_name(cached.path.name + ".card.json")  # the cache entry is not rewritten
    zoo.reset_log()
    again = FaceRecognizer("facelivt_s")
    assert zoo.requests == [] and again.threshold == cal.threshold  # still a valid cache entry, and calibrated
    assert again.threshold_source.startswith("model card: calibrated on three crops")


def test_a_stalled_server_times_out(zoo):
    zoo.stall_seconds = 20
    zoo.set_fault(AUTHORS_REPO, "facelivt-s.pt", "stall")
    with pytest.raises(DownloadError, match="stalled"):
        fetch_weights("facelivt_s", progress=False)
    assert _weights(zoo.home) == [] and not [p for p in zoo.hf.rglob("*.incomplete")]


def test_a_name_without_published_weights_is_refused_clearly(zoo):
    with pytest.raises(ValueError, match="no pretrained weights named 'facelivt_l_mhsa'.*facelivtv2_s"):
        create_model("facelivt_l_mhsa", pretrained=True)
    with pytest.raises(ValueError, match="no published pretrained weights"):
        FaceRecognizer("facelivt_l_mhsa")
