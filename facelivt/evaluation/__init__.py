"""Evaluation: insightface ``.bin`` verification sets (LFW, CFP-FP, AgeDB-30, ...), IJB-B/C 1:1 templates,
the standard 10-fold LFW-style protocol (flip-sum embeddings), TAR at FAR, AUC, EER, and reports.

The metric functions (:mod:`facelivt.evaluation.metrics`) take numpy arrays and need no torch.
"""
from facelivt.devices import resolve_device
from facelivt.evaluation.binset import BinSet, NotAPickleError, UnsafePickleError, decode_image, load_bin, read_bin, safe_loads, write_bin
from facelivt.evaluation.ijb import (
    IJBMeta,
    evaluate_ijb,
    evaluate_scores,
    ijb_scores,
    read_ijb_meta,
    score_template_pairs,
    template_features,
)
from facelivt.evaluation.makebin import make_bin
from facelivt.evaluation.metrics import (
    BIN_FARS,
    IJB_FARS,
    auc,
    eer,
    evaluate_distances,
    evaluate_embeddings,
    kfold_accuracy,
    kfold_splits,
    pair_distances,
    roc_curve,
    tar_at_far,
)
from facelivt.evaluation.pairs import PairSpec, generate_pairs, parse_pairs, resolve_pairs, write_pairs
from facelivt.evaluation.report import format_table, plot_roc, write_json
from facelivt.evaluation.runner import build_model, check_sets, embed_bin, evaluate_bin, evaluate_sets

__all__ = [
    "BIN_FARS",
    "IJB_FARS",
    "BinSet",
    "IJBMeta",
    "PairSpec",
    "NotAPickleError",
    "UnsafePickleError",
    "auc",
    "build_model",
    "check_sets",
    "decode_image",
    "eer",
    "embed_bin",
    "evaluate_bin",
    "evaluate_distances",
    "evaluate_embeddings",
    "evaluate_ijb",
    "evaluate_scores",
    "evaluate_sets",
    "format_table",
    "generate_pairs",
    "ijb_scores",
    "kfold_accuracy",
    "kfold_splits",
    "load_bin",
    "make_bin",
    "pair_distances",
    "parse_pairs",
    "plot_roc",
    "read_bin",
    "read_ijb_meta",
    "resolve_device",
    "resolve_pairs",
    "roc_curve",
    "safe_loads",
    "score_template_pairs",
    "tar_at_far",
    "template_features",
    "write_bin",
    "write_json",
    "write_pairs",
]
