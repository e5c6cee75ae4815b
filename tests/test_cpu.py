"""facelivt.cpu: the capability report (checked against what oneDNN and torch say of themselves, in real
processes with and without the AVX2 variables) and the per-capability defaults (capabilities injected;
nothing timed)."""
import json
import os
import subprocess
import sys

import pytest
import torch

from facelivt.cpu import (
    APPROX_AVX2_ENV, MEASURED, ONEDNN_ISAS, CpuCapability, cpu_capability, cpu_defaults, cpu_flags, onednn_isa, ort_isa,
)
from facelivt.precision import resolve_amp, resolve_channels_last

BACKENDS_CPU = ("onnxruntime", "torchscript", "compile", "eager")

# A Zen 2 EPYC (AVX2, no AVX-512) and a Sapphire Rapids Xeon, as /proc/cpuinfo lists their vector flags
ZEN2 = frozenset("sse4_1 sse4_2 avx avx2 fma f16c bmi2".split())
SPR = ZEN2 | frozenset("avx512f avx512bw avx512vl avx512dq avx512_vnni avx512_bf16 avx512_fp16 amx_tile amx_int8 amx_bf16 avx_vnni".split())
SKX = ZEN2 | frozenset("avx512f avx512bw avx512vl avx512dq".split())


@pytest.mark.parametrize("flags, cap, want", [
    (ZEN2, None, "avx2"),
    (SKX, None, "avx512_core"),
    (SKX | {"avx512_vnni"}, None, "avx512_core_vnni"),
    (SPR, None, "avx10_1_512_amx"),
    (SPR, "AVX2", "avx2"),
    (SPR, "avx512_core_amx", "avx10_1_512_amx"),  # oneDNN's older name
    (SPR, "AVX512_CORE_BF16", "avx512_core_bf16"),
    (SPR, "ALL", "avx10_1_512_amx"),
    (ZEN2, "AVX512_CORE", "avx2"),  # a cap above the CPU changes nothing
    (frozenset({"sse4_1"}), None, "sse41"),
])
def test_onednn_isa_is_the_highest_level_the_flags_allow_under_the_cap(flags, cap, want):
    assert onednn_isa(flags, cap) == want


def test_ort_isa_follows_the_flags():
    assert ort_isa(SPR) == "avx512" and ort_isa(ZEN2) == "avx2" and ort_isa(frozenset()) == "none"


def _cap(torch_isa: str, onednn: str, bf16: bool = False) -> CpuCapability:
    return CpuCapability(cpu="test", torch=torch_isa, onednn=onednn, mkl="auto", ort="avx512", ort_version="1.0",
                         native_bf16=bf16, threads=2, cores=2)


def test_isa_is_the_lower_of_torch_and_onednn():
    assert _cap("AVX512", "avx10_1_512_amx").isa == "avx512"
    assert _cap("AVX2", "avx2").isa == "avx2"
    assert _cap("AVX512", "avx2").isa == "avx2"
    assert _cap("AVX2", "avx512_core").isa == "avx2"
    assert _cap("DEFAULT", "sse41").isa == "baseline"


def test_summary_and_dict_name_every_part():
    c = _cap("AVX2", "avx2")
    line = c.summary()
    assert "\n" not in line
    for part in ("torch AVX2", "oneDNN avx2", "MKL auto", "ORT 1.0 avx512", "native bf16 no", "2 thread(s)"):
        assert part in line
    d = json.loads(json.dumps(c.to_dict()))
    assert d["isa"] == "avx2" and d["summary"] == line and d["onednn"] == "avx2"


def test_this_process_capability_matches_torch():
    c = cpu_capability(threads=3)
    assert c.torch == torch.backends.cpu.get_cpu_capability()
    assert c.threads == 3 and c.cores >= 1
    assert c.native_bf16 == bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


# What ONEDNN_VERBOSE prints on its "isa:" line for each level (oneDNN 3.x wording)
VERBOSE_WORDS = {
    "avx2": ("AVX2",), "avx2_vnni": ("AVX2", "VNNI"), "avx512_core": ("AVX-512",), "avx512_core_vnni": ("AVX-512", "Deep Learning"),
    "avx512_core_bf16": ("AVX-512", "bfloat16"), "avx10_1_512": ("AVX10.1",), "avx10_1_512_amx": ("AMX", "bfloat16", "8-bit"),
    "avx10_1_512_amx_fp16": ("AMX", "float16"),
}

PROBE = r"""
import json, torch
from facelivt.cpu import cpu_capability
x = torch.randn(2, 16, 16, 16).contiguous(memory_format=torch.channels_last)
w = torch.randn(16, 16, 3, 3).contiguous(memory_format=torch.channels_last)
torch.nn.functional.conv2d(x, w)
print("CAP " + json.dumps(cpu_capability().to_dict()))
"""


def _probe(extra_env: dict) -> tuple[dict, str]:
    env = {k: v for k, v in os.environ.items() if k not in APPROX_AVX2_ENV and k != "DNNL_MAX_CPU_ISA"}
    env.update(extra_env, ONEDNN_VERBOSE="1")
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=120, check=True).stdout
    cap = json.loads(next(ln for ln in out.splitlines() if ln.startswith("CAP "))[4:])
    isa_line = next(ln for ln in out.splitlines() if ",cpu,isa:" in ln)
    return cap, isa_line.split("isa:", 1)[1]


@pytest.mark.skipif("avx2" not in cpu_flags(), reason="the oneDNN cross-check needs an x86 CPU with AVX2")
@pytest.mark.parametrize("approx_avx2", [False, True])
def test_onednn_isa_matches_what_onednn_reports(approx_avx2):
    cap, verbose = _probe(APPROX_AVX2_ENV if approx_avx2 else {})
    assert cap["onednn"] in VERBOSE_WORDS, cap
    for word in VERBOSE_WORDS[cap["onednn"]]:
        assert word in verbose, (cap["onednn"], verbose)
    if approx_avx2:
        assert cap["onednn"] == "avx2" and cap["torch"] == "AVX2" and cap["mkl"] == "AVX2"
        assert cap["isa"] == "avx2" and not cap["native_bf16"]  # bf16 is emulated on an AVX2 oneDNN
        assert not any(w in verbose for w in ("AVX-512", "AVX10", "AMX"))


def test_the_ladder_needs_more_flags_at_each_avx512_level():
    levels = [set(need) for name, need in ONEDNN_ISAS if name.startswith(("avx512", "avx10"))]
    assert all(a < b for a, b in zip(levels, levels[1:]))


# ------------------------------------------------------------------------------------------ defaults

AVX512_BF16 = _cap("AVX512", "avx10_1_512_amx", bf16=True)
AVX512_NO_BF16 = _cap("AVX512", "avx512_core")
AVX2 = _cap("AVX2", "avx2")


@pytest.mark.parametrize("cap, amp", [(AVX512_BF16, "bf16"), (AVX512_NO_BF16, "none"), (AVX2, "none"), (_cap("DEFAULT", "sse41"), "none")])
def test_defaults_autocast_bf16_only_with_native_bf16(cap, amp):
    assert cpu_defaults(cap).amp == amp


def _fastest(m, key, rows):
    return min(rows, key=lambda r: m[key][r])


@pytest.mark.parametrize("isa, cap", [("avx512", AVX512_BF16), ("avx2", AVX2)])
def test_defaults_pick_the_inference_paths_the_measurements_favour(isa, cap):
    d, m = cpu_defaults(cap), MEASURED[isa]
    assert sorted(d.backends) == sorted(BACKENDS_CPU) and d.backends[2:] == ("compile", "eager")
    ts = _fastest(m, "infer_b32", ["torchscript CL", "torchscript NCHW"])
    if m["infer_b1"]["onnxruntime"] < m["infer_b1"][ts] and m["infer_b32"]["onnxruntime"] < m["infer_b32"][ts]:
        assert d.backends[0] == "onnxruntime"
    if m["infer_b1"]["onnxruntime"] > m["infer_b1"][ts] and m["infer_b32"]["onnxruntime"] > m["infer_b32"][ts]:
        assert d.backends[0] == "torchscript"
    assert (d.pointwise_linear_max_rows > 0) is (m["infer_b1"]["eager CL linear1x1"] < m["infer_b1"]["eager CL conv1x1"])
    assert d.train_channels_last is (max(m["train"]["cl"], m["train"]["cl_conv"]) > m["train"]["nchw"])
    assert d.train_linear_1x1 is (m["train"]["cl"] > m["train"]["cl_conv"])


def test_cpus_below_avx2_take_the_avx2_figures():
    assert cpu_defaults(_cap("DEFAULT", "sse41")) == cpu_defaults(_cap("AVX2", "avx2"))


INFER_ROWS = ("eager CL linear1x1", "eager CL conv1x1", "eager NCHW", "torchscript CL", "torchscript NCHW", "onnxruntime")


def _table(train: dict[str, float], fastest_infer: str, linear_beats_conv: bool) -> dict:
    """A made-up MEASURED entry: ``fastest_infer`` fastest at both batches, every other row 2x slower, and the
    1x1-as-linear row 1.5x (faster than the conv row or not, as asked)."""
    infer = {r: (1.0 if r == fastest_infer else 2.0) for r in INFER_ROWS}
    if fastest_infer != "eager CL linear1x1":
        infer["eager CL linear1x1"] = 1.5 if linear_beats_conv else 2.5
    return {"train": {"released": 1.0, "edgeface_xs": 1.0, **train}, "infer_b1": dict(infer), "infer_b32": dict(infer)}


@pytest.mark.parametrize("isa, cap", [("avx512", AVX512_BF16), ("avx2", AVX2)])
@pytest.mark.parametrize("train, layout, linear", [
    ({"cl": 3.0, "cl_conv": 2.0, "nchw": 1.0}, True, True),  # images/s: channels-last with 1x1 as linear fastest
    ({"cl": 2.0, "cl_conv": 3.0, "nchw": 1.0}, True, False),
    ({"cl": 2.0, "cl_conv": 1.0, "nchw": 3.0}, False, True),
])
@pytest.mark.parametrize("fastest, backend, infer_cl", [
    ("onnxruntime", "onnxruntime", True), ("torchscript NCHW", "torchscript", False),
    ("eager NCHW", "onnxruntime", False), ("eager CL conv1x1", "onnxruntime", True),
])
def test_the_rule_picks_each_path_the_measurements_favour_for_each_isa(monkeypatch, isa, cap, train, layout, linear, fastest,
                                                                      backend, infer_cl):
    import facelivt.cpu as cpu  # noqa: PLC0415 - the module whose table is replaced

    other = "avx2" if isa == "avx512" else "avx512"
    slow = _table({"cl": 1.0, "cl_conv": 1.0, "nchw": 1.0}, "torchscript CL", linear_beats_conv=False)
    for linear_beats_conv in (True, False):
        table = {isa: _table(train, fastest, linear_beats_conv), other: slow}
        monkeypatch.setattr(cpu, "MEASURED", table)
        d = cpu_defaults(cap)
        assert (d.train_channels_last, d.train_linear_1x1) == (layout, linear)
        if fastest in ("onnxruntime", "torchscript NCHW"):
            assert d.backends[0] == backend
        if fastest.startswith("eager"):
            assert d.infer_channels_last is infer_cl
        b1 = table[isa]["infer_b1"]
        assert (d.pointwise_linear_max_rows > 0) is (b1["eager CL linear1x1"] < b1["eager CL conv1x1"])
    # the other ISA reads its own entry
    monkeypatch.setattr(cpu, "MEASURED", {isa: _table(train, fastest, True), other: slow})
    o = cpu_defaults(AVX2 if isa == "avx512" else AVX512_BF16)
    assert o.backends[0] == "torchscript" and not o.train_linear_1x1


def test_the_trainer_and_optimize_for_inference_follow_the_injected_defaults(monkeypatch):
    import facelivt.deploy.optimize as optimize  # noqa: PLC0415 - the module whose lookup is replaced

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    for cap in (AVX512_BF16, AVX2):
        d = cpu_defaults(cap)
        assert resolve_channels_last(None, cpu, d) is d.train_channels_last
        assert resolve_amp("auto", cpu, d) is (torch.bfloat16 if d.amp == "bf16" else None)
        monkeypatch.setattr(optimize, "machine_defaults", lambda d=d: d)
        assert optimize._order("auto", cpu) == list(d.backends)
    assert resolve_channels_last(None, cuda, cpu_defaults(AVX2)) is True
    assert resolve_channels_last(False, cpu, cpu_defaults(AVX512_BF16)) is False
    assert resolve_amp("none", cpu, cpu_defaults(AVX512_BF16)) is None


def test_pointwise_conv_follows_the_machine_bound(monkeypatch):
    import facelivt.models.layers as layers  # noqa: PLC0415 - the module whose lookup is replaced

    conv = layers.PointwiseConv(8, 4, 1)
    x = torch.randn(2, 8, 4, 4).contiguous(memory_format=torch.channels_last)
    calls = []
    linear = torch.nn.functional.linear
    monkeypatch.setattr(layers.F, "linear", lambda *a: calls.append(1) or linear(*a))
    for rows, as_linear in ((0, False), (32, True), (31, False)):
        d = cpu_defaults(AVX2).__class__(**{**cpu_defaults(AVX2).__dict__, "pointwise_linear_max_rows": rows})
        monkeypatch.setattr(layers, "machine_defaults", lambda d=d: d)
        calls.clear()
        torch.testing.assert_close(conv(x), torch.nn.functional.conv2d(x, conv.weight, conv.bias))
        assert bool(calls) is as_linear, rows


def test_thread_counts_are_bounded_by_four_times_the_usable_cores():
    from facelivt.cpu import check_threads, max_threads
    from facelivt.errors import InvalidInputError

    cores = len(os.sched_getaffinity(0))
    assert max_threads() == 4 * cores
    assert check_threads(None, "--threads") is None
    assert check_threads(1, "--threads") == 1 and check_threads(4 * cores, "--threads") == 4 * cores
    assert check_threads(0, "data.num_workers", minimum=0) == 0
    for bad, option in ((4 * cores + 1, "--threads"), (100000, "train.num_threads"), (0, "--workers"), (-1, "--threads")):
        with pytest.raises(InvalidInputError, match=rf"^{option} must be an integer from 1 to {4 * cores} "
                                                    rf"\(4 x the {cores} CPU cores this process may use\), got {bad}$"):
            check_threads(bad, option)
    with pytest.raises(InvalidInputError, match="got 2.5"):
        check_threads(2.5, "--threads")


def test_the_thread_bound_follows_the_cores_this_process_may_use():
    """Pinned to one core (as taskset or a container's cpuset does), a process accepts at most 4 threads."""
    script = ("import os; os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})\n"
              "from facelivt.cpu import max_threads; print(max_threads())")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "4"
