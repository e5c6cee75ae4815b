"""Every registered model through the same checks, as timm's tests/test_models.py: built by the registry,
its parameter and MAC counts against the variant table's reference counts, its deploy form
(``reparameterize_model``) and export form (``export_form_model``) the same function as the train form,
its ONNX file in ONNX Runtime the same function as PyTorch, and the authors' released layout where a
reference file of the variant lies in ../shared/reference.

A new variant is tested by registering it: a table entry in ``models/config.py`` (registered by
``models/registry.py``) or a ``register_model(name, builder)`` call in a module that ``facelivt.models``
imports puts it in ``list_models()``, and every parametrized test below runs on it; a variant's
``cfg.reference_counts`` are checked when the variant has them, and a reference file
``official_<released name>.pt`` (``models/released.py``, ``RELEASED_NAMES``) is picked up when it is
added. ``test_a_registered_variant_runs_through_every_check`` registers a small variant and runs it
through the same checks.

The checks of one family's layers and options live in the files named after their modules
(test_facelivt.py, test_facelivtv2.py, test_reparam.py, test_released.py, test_config.py, test_peers.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
import torch
from torch import nn

import facelivt
from facelivt.deploy.counting import complexity, count_macs
from facelivt.deploy.onnx_export import check_onnx, export_onnx
from facelivt.deploy.parity import FP32_MIN_COSINE
from facelivt.models import count_batchnorm, export_form_model, list_models, preprocess_of, register_model, registry
from facelivt.models.config import FaceLiVTConfig
from facelivt.models.export_form import FOREIGN_EXPORT_FORMS
from facelivt.models.facelivt import FaceLiVT
from facelivt.models.facelivtv2 import FaceLiVTv2, GDConvHead, LiteMHLA, LiteMHLAFolded
from facelivt.models.layers import FFN, MHLA, MHSA, RepConv, Residual
from facelivt.models.released import RELEASED_NAMES, convert_released_state_dict
from model_helpers import randomize_model

REFERENCE = Path(__file__).resolve().parents[2].parent / "shared" / "reference"
MODELS = list_models()
#: The ONNX parity check of a variant with more parameters (millions, its table count) is marked slow (it still runs).
SLOW_ONNX_PARAMS_M = 10.0
#: Models whose export form computes less than their deploy form (a constant computed once), and what.
EXPORT_FORM_PRECOMPUTES = {"edgeface_xs": "the SDTA positional encoding, a constant at a fixed map size"}
#: The authors' reference files: ``official_<their variant name>.pt`` -> our model name.
RELEASED_FILES = {RELEASED_NAMES[p.stem.removeprefix("official_")]: p for p in sorted(REFERENCE.glob("official_*.pt"))}


def _relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


@dataclass
class Forms:
    """One model's train form (non-trivial norms, BatchNorm statistics and biases: ``randomize_model``;
    eval mode), its state before ``reparameterize_model`` ran, and the deploy form."""

    name: str
    train: nn.Module
    deploy: nn.Module
    train_state: dict = field(repr=False)
    train_modules: list = field(repr=False)


def build_forms(name: str) -> Forms:
    torch.manual_seed(0)
    train = randomize_model(facelivt.create_model(name)).eval()
    state = {k: v.clone() for k, v in train.state_dict().items()}
    modules = [type(m) for m in train.modules()]
    return Forms(name, train, facelivt.reparameterize_model(train), state, modules)


@pytest.fixture(scope="module", params=MODELS)
def forms(request) -> Forms:
    """Module scope: the tests run model by model, one model's forms in memory at a time."""
    return build_forms(request.param)


def _family_checks(model: nn.Module) -> tuple:
    """(structure check of the train form, structure check of the deploy form) of ``model``'s family."""
    for cls, checks in FAMILY_CHECKS.items():
        if isinstance(model, cls):
            return checks
    return (lambda m: None, lambda m: None)


# --------------------------------------------------------------------------- the checks, one per property
def check_builds(f: Forms, images: torch.Tensor) -> None:
    """The registry builds ``f.name``: its name and preprocessing attached, a finite embedding per image,
    and the structure its configuration asks for."""
    model = f.train
    assert model.model_name == f.name
    size = preprocess_of(model).input_size
    assert size == model.preprocess.input_size == images.shape[-1]
    with torch.no_grad():
        out = model(images[:2])
    cfg = getattr(model, "cfg", None)
    assert out.shape == (2, getattr(cfg, "embedding_size", 512))
    assert torch.isfinite(out).all()
    _family_checks(model)[0](model)


def check_counts(f: Forms) -> None:
    """Deploy-form parameters and MACs at the input size within 0.5 % of the variant's reference counts
    where it has them (the paper's table, or the released code's for FaceLiVTv2). Reparameterization
    folds norms, branches and scales: fewer parameters, and fewer MACs where a BatchNorm was folded."""
    deploy, train = complexity(f.deploy), complexity(f.train)
    reference = getattr(getattr(f.train, "cfg", None), "reference_counts", None)
    if reference is not None:
        params_m, macs_m = reference
        assert abs(deploy.params_m / params_m - 1) < 0.005, (deploy.params_m, params_m)
        assert abs(deploy.macs_m / macs_m - 1) < 0.005, (deploy.macs_m, macs_m)
    assert train.params > deploy.params and train.macs >= deploy.macs
    if count_batchnorm(f.train):
        assert train.macs > deploy.macs


def check_reparameterized(f: Forms, images: torch.Tensor) -> None:
    """The deploy form is the same function (relative error < 1e-5 on real faces), has no BatchNorm and no
    two-branch RepConv, and the train form it came from is left as it was."""
    with torch.no_grad():
        assert _relative_error(f.deploy(images), f.train(images)) < 1e-5
    assert count_batchnorm(f.deploy) == 0
    assert not any(isinstance(m, RepConv) for m in f.deploy.modules())
    assert [type(m) for m in f.train.modules()] == f.train_modules
    for k, v in f.train.state_dict().items():
        assert torch.equal(v, f.train_state[k]), k
    _family_checks(f.train)[1](f.deploy)


def check_export_form(f: Forms, images: torch.Tensor) -> None:
    """``export_form_model`` swaps every shape-reading block for its export form: none of them runs in the
    export form (an export form may wrap the block's layers), which is the same function at any batch
    (float32 round-off) counted by the same MAC formulas (less where it precomputes a constant:
    :data:`EXPORT_FORM_PRECOMPUTES`); the deploy form is left alone."""
    size = images.shape[-1]
    before = [type(m) for m in f.deploy.modules()]
    exported = export_form_model(f.deploy, size)
    assert [type(m) for m in f.deploy.modules()] == before
    reading = tuple(FOREIGN_EXPORT_FORMS) + tuple({type(m) for m in f.deploy.modules() if callable(getattr(m, "export_form", None))})
    ran = []
    hooks = [m.register_forward_pre_hook(lambda m, args: ran.append(type(m))) for m in exported.modules() if isinstance(m, reading)]
    x = torch.cat([images, images.flip(-1)])
    try:
        with torch.no_grad():
            ref, out, one = f.deploy(x), exported(x), exported(x[:1])
    finally:
        for h in hooks:
            h.remove()
    assert ran == []
    scale = max(1.0, ref.abs().max().item())
    assert (ref - out).abs().max().item() < 2e-5 * scale
    assert (ref[:1] - one).abs().max().item() < 2e-5 * scale
    macs, exported_macs = count_macs(f.deploy, size), count_macs(exported, size)
    if f.name in EXPORT_FORM_PRECOMPUTES:
        assert exported_macs < macs
    else:
        assert exported_macs == macs


def check_onnx_parity(f: Forms, folder: Path, images: torch.Tensor) -> None:
    """The ONNX file (dynamic batch) run by ONNX Runtime gives PyTorch's embeddings, at the full batch
    and image by image."""
    path = export_onnx(f.deploy, folder / f"{f.name}.onnx")
    parity = check_onnx(f.deploy, path, images)
    assert parity.images == len(images)
    assert parity.min_cosine >= FP32_MIN_COSINE, parity.describe()
    with torch.no_grad():
        scale = max(1.0, f.deploy(images).abs().max().item())
    assert parity.max_abs_diff < 1e-4 * scale, parity.describe()


# --------------------------------------------------------------------------- the structure of each family
def _facelivt_train(model: FaceLiVT) -> None:
    """Stages 3-4 hold one MHLA (or MHSA) per block, the other mixer nowhere; MHLA has the configured heads."""
    cfg = model.cfg
    mixer, other = (MHLA, MHSA) if cfg.mixer == "mhla" else (MHSA, MHLA)
    mixers = [m for m in model.modules() if isinstance(m, mixer)]
    assert len(mixers) == sum(cfg.depths[2:])
    assert not any(isinstance(m, other) for m in model.modules())
    if mixer is MHLA:
        assert {m.num_heads for m in mixers} == {cfg.num_heads}


def _facelivt_deploy(deploy: FaceLiVT) -> None:
    """Every DWMix identity is folded into its depthwise kernel."""
    assert not any(isinstance(m, Residual) and isinstance(m.fn, nn.Conv2d) for m in deploy.modules())


def _facelivtv2_train(model: FaceLiVTv2) -> None:
    """One Lite MHLA per block of stages 3-4 (no MHLA), all heads in one (heads, N, N) weight, the FFN
    ratio of the config everywhere (stages and down-sampling), the GDConv head at its configured width."""
    cfg = model.cfg
    mhla = [m for m in model.modules() if isinstance(m, LiteMHLA)]
    assert len(mhla) == sum(cfg.depths[2:])
    assert not any(isinstance(m, MHLA) for m in model.modules())
    if cfg.input_size == 112:
        assert {m.num_tokens for m in mhla} == {49, 16}  # 7x7 and 4x4 maps
    assert {tuple(m.weight.shape[:1]) for m in mhla} == {(cfg.num_heads,)}
    for m in model.modules():
        if isinstance(m, FFN):
            assert m.fc1.conv.out_channels == cfg.mlp_ratio * m.fc1.conv.in_channels
    assert model.head.proj.conv.out_channels == cfg.head_channels


def _facelivtv2_deploy(deploy: FaceLiVTv2) -> None:
    """No GDConvHead left (1x1 conv, depthwise conv, Linear), every depthwise residual folded (the residuals
    left wrap FFNs and Lite MHLAs), every Lite MHLA folded (affine and layer scale)."""
    assert not any(isinstance(m, (RepConv, GDConvHead)) for m in deploy.modules())
    assert not any(isinstance(m, Residual) and isinstance(m.fn, nn.Conv2d) for m in deploy.modules())
    mhla = [m for m in deploy.modules() if isinstance(m, LiteMHLA)]
    assert mhla and all(isinstance(m, LiteMHLAFolded) for m in mhla)
    head = [m for m in deploy.head.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert [type(m) for m in head][-1] is nn.Linear and len(head) == 3


FAMILY_CHECKS = {FaceLiVT: (_facelivt_train, _facelivt_deploy), FaceLiVTv2: (_facelivtv2_train, _facelivtv2_deploy)}


# --------------------------------------------------------------------------- the registry
def test_every_table_variant_is_registered():
    from facelivt.models import V2_VARIANTS, VARIANTS

    assert set(VARIANTS) | set(V2_VARIANTS) <= set(MODELS)
    assert {"edgeface_xs", "mobilefacenet"} <= set(MODELS)


def test_unknown_name_lists_the_registered_ones():
    with pytest.raises(ValueError) as err:
        facelivt.create_model("facelivt_xl")
    for name in MODELS:
        assert name in str(err.value)


def test_reference_files_are_found():
    """The released-layout round trip runs: its reference files are where the suite looks for them."""
    assert {"facelivt_s", "facelivt_s_mhsa", "facelivtv2_s"} <= set(RELEASED_FILES)


# --------------------------------------------------------------------------- every registered model
def test_builds(forms, faces_batch):
    check_builds(forms, faces_batch)


def test_counts(forms):
    check_counts(forms)


def test_reparameterize_is_the_same_function(forms, faces_batch):
    check_reparameterized(forms, faces_batch)


def test_export_form_is_the_same_function(forms, faces_batch):
    check_export_form(forms, faces_batch)


def _onnx_param(name: str):
    cfg = registry.model_config(name)
    big = cfg is not None and cfg.reference_counts is not None and cfg.reference_counts[0] > SLOW_ONNX_PARAMS_M
    return pytest.param(name, marks=pytest.mark.slow) if big else name


@pytest.mark.parametrize("forms", [_onnx_param(n) for n in MODELS], indirect=True)
def test_onnx_parity(forms, tmp_path, faces_batch):
    check_onnx_parity(forms, tmp_path, faces_batch)


@pytest.mark.parametrize("name", sorted(RELEASED_FILES))
def test_released_layout_round_trip(name, tmp_path):
    """The authors' file (their key layout, random but non-trivial weights) gives the vectors their code
    gave, in train and deploy form; read by ``load_model`` and saved as this project's safetensors, the
    same again."""
    path = RELEASED_FILES[name]
    ref = torch.load(path, map_location="cpu", weights_only=True)
    model = facelivt.create_model(name).eval()
    model.load_state_dict(convert_released_state_dict(ref["state_dict"], name))
    with torch.no_grad():
        assert (model(ref["input"]) - ref["output"]).abs().max() < 1e-5
        assert (facelivt.reparameterize_model(model)(ref["input"]) - ref["output_deploy"]).abs().max() < 1e-5
    loaded = facelivt.load_model(name, path, deploy=False)
    facelivt.save_weights(loaded, tmp_path / "w.safetensors")
    again = facelivt.load_model(name, tmp_path / "w.safetensors", deploy=True)
    with torch.no_grad():
        assert (loaded(ref["input"]) - ref["output"]).abs().max() < 1e-5
        assert (again(ref["input"]) - ref["output_deploy"]).abs().max() < 1e-5


# --------------------------------------------------------------------------- a new variant
#: A small FaceLiVT (MHLA, GDC head) with its deploy counts as measured when this test was written, standing
#: in for a table entry's published ones.
TINY = FaceLiVTConfig((16, 32, 64, 128), (1, 1, 2, 1), "mhla", num_heads=4, head="gdc", reference_counts=(0.490, 14.57))


def test_a_registered_variant_runs_through_every_check(monkeypatch, tmp_path, faces_batch):
    """``register_model`` is all a new variant needs: it is listed, and every check above runs on it, its
    reference counts included (counts 2 % off fail)."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # the registry as it was, after the test
    monkeypatch.setattr(registry, "_PREPROCESS", dict(registry._PREPROCESS))
    register_model("facelivt_tiny_test", lambda **overrides: FaceLiVT(TINY.with_overrides(**overrides)))
    assert "facelivt_tiny_test" in list_models()
    f = build_forms("facelivt_tiny_test")
    check_builds(f, faces_batch)
    check_counts(f)
    check_reparameterized(f, faces_batch)
    check_export_form(f, faces_batch)
    check_onnx_parity(f, tmp_path, faces_batch[:2])
    f.train.cfg = replace(TINY, reference_counts=(0.490 * 1.02, 14.57))
    with pytest.raises(AssertionError):
        check_counts(f)
