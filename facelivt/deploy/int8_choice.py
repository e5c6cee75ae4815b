"""Where int8 pays (layer 0 of :mod:`facelivt.deploy`): the measured ONNX Runtime latency of static int8
against float32 per registry model and int8 ISA (:data:`INT8_MEASURED`, from ``benchmarks/int8.py``) and
the rule that reads it (:func:`int8_choice`), which ``optimize_for_inference(..., int8=True)`` and
``facelivt export --int8`` follow.

int8 is used for a model when, on a CPU of the measured ISA, it was at least :data:`INT8_MIN_SPEEDUP`
times as fast as float32 at batch 1 *and* at batch 32, and its embeddings kept a mean cosine of at least
:data:`INT8_MIN_MEAN_COSINE` to float32's on real faces (a quantiser that clips falls far below; what int8
costs in verification accuracy is measured on trained weights: :data:`INT8_ACCURACY`). Elsewhere (not faster, less accurate, a model or an
ISA never measured) int8 is skipped, with the reason, unless it is forced (``int8="force"``,
``--force-int8``).

The gain depends on the CPU: ONNX Runtime's int8 kernels run on VNNI (AVX-512 or AVX) or AMX-INT8 dot
products where CPUID has them; AVX2-only CPUs (e.g. EPYC before Zen 4) multiply int8 through
``vpmaddubsw`` and may not gain. ONNX Runtime cannot be made to pick a lower ISA, so only the ISA of the
machine that ran the benchmark is in the table (:func:`facelivt.cpu.ort_int8_isa` names the key).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from facelivt.cpu import ort_int8_isa

INT8_MIN_SPEEDUP = 1.1  # fp32 ms / int8 ms, at batch 1 and at batch 32
INT8_MIN_MEAN_COSINE = 0.98  # mean int8-vs-fp32 embedding cosine on real crops (random-weight deploy forms)

# python benchmarks/int8.py --runs 30 (2 threads, ONNX Runtime 1.32.0, calibrated on 64 real crops of
# the shared CelebA subset (aligned crops), cosine on 32 others; deploy forms with random initial weights):
# int8 ms / fp32 ms at batch 1 and 32 (the worst of 1-3 runs: the 2-core Intel Xeon with AVX-512 VNNI and
# AMX-INT8 was shared with other benchmarks, load 3-5, and a repeat moved a ratio by up to 0.3; FaceLiVT-S,
# -S-MHSA, v2-XS and v2-M were run 2-3 times) and the mean cosine.
INT8_MEASURED: dict[str, dict[str, dict[str, float]]] = {
    "amx": {
        "facelivt_s": {"b1": 0.91, "b32": 1.18, "mean_cosine": 0.9878},
        "facelivt_m": {"b1": 0.79, "b32": 0.78, "mean_cosine": 0.9873},
        "facelivt_s_mhsa": {"b1": 0.68, "b32": 0.93, "mean_cosine": 0.9954},
        "facelivtv2_xs": {"b1": 1.39, "b32": 1.14, "mean_cosine": 0.9950},
        "facelivtv2_s": {"b1": 1.02, "b32": 0.95, "mean_cosine": 0.9953},
        "facelivtv2_m": {"b1": 0.82, "b32": 0.93, "mean_cosine": 0.9954},
        "edgeface_xs": {"b1": 1.24, "b32": 1.23, "mean_cosine": 0.9997},
        "mobilefacenet": {"b1": 1.20, "b32": 1.38, "mean_cosine": 0.9918},
    },
}
# What int8 cost in verification: the trained FaceLiVT-S of tests/deploy/weights on 400 pairs of held-out
# identities (610 images), fp32 vs int8 in ONNX Runtime, same run as the table (benchmarks/int8.py).
INT8_ACCURACY = {"facelivt_s": {"fp32": 0.7700, "int8": 0.7700, "fp32_auc": 0.8735, "int8_auc": 0.8729,
                                "verdicts_changed": 3, "min_cosine": 0.9884, "mean_cosine": 0.9978}}


@dataclass(frozen=True)
class Int8Choice:
    """Whether int8 is used for ``model`` on a CPU of int8 ISA ``isa``, and why."""

    model: str | None
    isa: str
    use: bool
    forced: bool
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


def int8_choice(model: str | None, isa: str | None = None, force: bool = False) -> Int8Choice:
    """The choice for registry model ``model`` (None: a model not in the registry) on int8 ISA ``isa``
    (default this CPU's, :func:`facelivt.cpu.ort_int8_isa`); ``force``: int8 whatever was measured."""
    isa = ort_int8_isa() if isa is None else isa
    pays, why = _measured_verdict(model, isa)
    if force:
        return Int8Choice(model, isa, True, True, f"int8 forced ({why})")
    return Int8Choice(model, isa, pays, False, why)


def _measured_verdict(model: str | None, isa: str) -> tuple[bool, str]:
    table = INT8_MEASURED.get(isa)
    if table is None:
        measured = ", ".join(sorted(INT8_MEASURED))
        return False, (f"int8 was not measured on {isa} CPUs (only on {measured}); CPUs without VNNI or AMX "
                       f"may not gain")
    m = table.get(model or "")
    if m is None:
        return False, f"int8 was not measured for {model or 'this model'} on {isa} CPUs"
    b1, b32 = 1 / m["b1"], 1 / m["b32"]
    speed = f"int8 measured {b1:.2f}x fp32's speed at batch 1, {b32:.2f}x at batch 32 on {isa}"
    if m["mean_cosine"] < INT8_MIN_MEAN_COSINE:
        return False, f"{speed}, but its embeddings' mean cosine to fp32 was {m['mean_cosine']:.3f} (< {INT8_MIN_MEAN_COSINE})"
    if min(b1, b32) < INT8_MIN_SPEEDUP:
        return False, f"{speed}: not {INT8_MIN_SPEEDUP}x faster at both"
    return True, speed
