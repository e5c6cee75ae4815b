"""The variant tables (models/config.py): the paper's FaceLiVT variants and the released FaceLiVTv2 ones,
their fixed settings, and the option overrides every variant accepts. Every variant's counts, deploy,
export and ONNX forms are checked in test_models.py."""
import pytest

import facelivt
from facelivt.models.config import V2_VARIANTS, VARIANTS


def test_the_paper_variants_in_table_order():
    assert list(VARIANTS) == ["facelivt_s", "facelivt_m", "facelivt_s_mhsa", "facelivt_m_mhsa", "facelivt_mplus_mhsa",
                              "facelivt_l_mhsa"]
    assert all(cfg.reference_counts is not None for cfg in VARIANTS.values())


def test_the_released_v2_variants_and_their_fixed_settings():
    assert list(V2_VARIANTS) == ["facelivtv2_xs", "facelivtv2_s", "facelivtv2_m", "facelivtv2_l"]
    for cfg in V2_VARIANTS.values():
        # 4 Lite MHLA heads, FFN ratio 2 (stages and down-sampling), the released 1284-wide GDConv head
        assert (cfg.num_heads, cfg.mlp_ratio, cfg.head, cfg.head_channels) == (4, 2, "gdc", 1284)
        assert cfg.reference_counts is not None


def test_every_variant_maps_112x112_crops_to_512_d_embeddings():
    for cfg in (*VARIANTS.values(), *V2_VARIANTS.values()):
        assert (cfg.input_size, cfg.embedding_size) == (112, 512)


@pytest.mark.parametrize("name", ["facelivt_s", "facelivtv2_xs"])
def test_unknown_override_is_refused(name):
    with pytest.raises(ValueError, match="num_heads"):
        facelivt.create_model(name, num_head=8)


def test_a_real_override_drops_the_published_counts():
    cfg = VARIANTS["facelivt_s"]
    assert cfg.with_overrides(num_heads=16).reference_counts == cfg.reference_counts  # no change: they still hold
    assert cfg.with_overrides(num_heads=8).reference_counts is None
