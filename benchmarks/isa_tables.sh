#!/usr/bin/env bash
# Regenerate the tables of docs/cpu_notes.md for one capability (see facelivt/cpu.py):
#
#   benchmarks/isa_tables.sh native [OUT]   # the CPU as it is (AVX-512 on the reference machine)
#   benchmarks/isa_tables.sh avx2   [OUT]   # the AVX2 kernels of torch, oneDNN and MKL on the same CPU
#                                           # (ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2;
#                                           #  ONNX Runtime cannot be capped and keeps its AVX-512 kernels)
#
# Writes OUT/{train,latency,defaults}_<isa>.{md,json} (OUT default: isa_tables); each table starts with
# the CPU capability it ran with. On an AVX2-only CPU, "native" is the real AVX2 table.
# THREADS (default 2) sets the thread count; use THREADS=1 on a machine that other jobs load heavily.
set -euo pipefail
isa="${1:-native}"
out="${2:-isa_tables}"
threads="${THREADS:-2}"
here="$(cd "$(dirname "$0")" && pwd)"
case "$isa" in
  native) ;;
  avx2) export ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 ;;
  *) echo "usage: $0 native|avx2 [OUT]" >&2; exit 2 ;;
esac
mkdir -p "$out"
out="$(cd "$out" && pwd)"
cd "$here"
python train_throughput.py --threads "$threads" --steps 30 --rounds 6 --rows plain,cl,cl_conv,nchw,compile,released,peer \
  --out "$out/train_$isa.json" | tee "$out/train_$isa.md"
python latency.py --threads "$threads" --models facelivt_s facelivtv2_xs --peer edgeface_xs --batches 1 32 --runs 60 \
  --out "$out/latency_$isa.json" | tee "$out/latency_$isa.md"
python cpu_defaults.py --threads "$threads" --runs 30 --out "$out/defaults_$isa.json" | tee "$out/defaults_$isa.md"
