"""Counting (deploy/counting.py): the train form's counts, a variant with other heads, mode and batch. Every
registered model's deploy counts against its variant table's reference counts: tests/models/test_models.py."""
import facelivt
from facelivt.deploy.counting import complexity


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

