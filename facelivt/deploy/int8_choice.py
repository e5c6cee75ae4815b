"""Where int8 pays (layer 0 of :mod:`facelivt.deploy`): the measured ONNX Runtime latency of static int8
against float32 per registry model and int8 ISA (:data:`INT8_MEASURED`, from ``benchmarks/int8.py``) and
the rule that reads it (:func:`int8_choice`), which ``optimize_for_inference(..., int8=True)`` and
``facelivt export --int8`` follow.

int8 is used for a model when, on a CPU of the measured ISA, it was at least :data:`INT8_MIN_SPEEDUP`
times as fast as float32 at batch 1 *and* at batch 32, and its embeddings kept a cosine of at least
:data:`INT8_MIN_COSINE` to float32's on real faces. Elsewhere (not faster, less accurate, a model or an
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
INT8_MIN_COSINE = 0.99  # smallest int8-vs-fp32 embedding cosine on real crops

# python benchmarks/int8.py --runs 20 (2 threads, ONNX Runtime 1.32.0, calibrated on 64 real crops of
# ../shared/data/celeba_subset_112, cosine on 32 others; deploy forms with random initial weights):
# int8 ms / fp32 ms at batch 1 and 32, and the smallest cosine. The reference machine: a 2-core
# Intel Xeon (AVX-512 with VNNI, AMX-INT8), shared, so ratios within a run count, not the ms.
INT8_MEASURED: dict[str, dict[str, dict[str, float]]] = {
    "amx": {},
}


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
    if m["min_cosine"] < INT8_MIN_COSINE:
        return False, f"{speed}, but its embeddings' cosine to fp32 fell to {m['min_cosine']:.3f} (< {INT8_MIN_COSINE})"
    if min(b1, b32) < INT8_MIN_SPEEDUP:
        return False, f"{speed}: not {INT8_MIN_SPEEDUP}x faster at both"
    return True, speed
