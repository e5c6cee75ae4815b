import pytest

import facelivt
from facelivt.deploy.counting import complexity
from facelivt.models import VARIANTS


@pytest.mark.parametrize("name", list(VARIANTS))
def test_deploy_counts_match_published_table(name):
    params_m, macs_m = VARIANTS[name].reference_counts
    deploy = facelivt.reparameterize_model(facelivt.create_model(name).eval())
    c = complexity(deploy)
    assert abs(c.params_m / params_m - 1) < 0.005
    assert abs(c.macs_m / macs_m - 1) < 0.005


def test_train_form_counts_and_he8():
    train = complexity(facelivt.create_model("facelivt_s"))
    assert abs(train.params_m - 5.071) < 0.001 and abs(train.macs_m - 162.9) < 0.8
    he8 = complexity(facelivt.reparameterize_model(facelivt.create_model("facelivt_s", num_heads=8).eval()))
    assert abs(he8.params_m - 4.088) < 0.001


def test_counting_restores_mode_and_handles_batch():
    m = facelivt.create_model("facelivt_s").train()
    c1 = complexity(m)
    assert m.training
    from facelivt.deploy.counting import count_macs

    # per-image figure; ptflops counts a Linear's bias once per call, hence the tiny batch dependence
    assert abs(count_macs(m, batch=2) / c1.macs - 1) < 1e-5


@pytest.mark.parametrize("name", ["facelivtv2_xs", "facelivtv2_s", "facelivtv2_m", "facelivtv2_l"])
def test_v2_deploy_counts_match_the_released_code(name):
    """The deploy figures the authors' FaceLiVTv2 code gives within 0.5 %; the train form has the BNs and the
    unmerged RepConv branches on top."""
    from facelivt.models import V2_VARIANTS

    params_m, macs_m = V2_VARIANTS[name].reference_counts
    model = facelivt.create_model(name).eval()
    c = complexity(facelivt.reparameterize_model(model))
    assert abs(c.params_m / params_m - 1) < 0.005
    assert abs(c.macs_m / macs_m - 1) < 0.005
    train = complexity(model)
    assert train.params > c.params and train.macs > c.macs
