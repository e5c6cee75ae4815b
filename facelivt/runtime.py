"""Process-level CPU settings for the applications (training, benchmarks, the CLI).

The library itself never calls these: an application opts in, as it sets its thread count.

``tune_allocator``: glibc's malloc hands every block of 128 KiB or more straight from ``mmap`` and
returns it to the system on ``free``. A CNN allocates megabytes of activations per layer, so every
forward and backward pass then page-faults its way through fresh memory: on the 2-core reference
machine this cost a FaceLiVT-S training step about 15 % (79 -> 92 images/s,
``benchmarks/train_throughput.py --malloc default`` vs the tuned default) and made one GELU over a
12 MB map 3x slower. Raising the mmap threshold and the trim threshold lets freed blocks be reused
without page faults, as jemalloc or tcmalloc would; the price is that the process keeps its peak
heap (up to ``trim_threshold`` of it free) instead of returning it to the system.
"""
from __future__ import annotations

import ctypes
import os
import platform

# mallopt parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3

ENV_OPT_OUT = "FACELIVT_MALLOC"  # "default" leaves glibc's allocator as it is


def tune_allocator(
    mmap_threshold: int = 32 << 20,
    trim_threshold: int = 1 << 30,
    top_pad: int = 64 << 20,
) -> bool:
    """Keep freed activation memory for reuse (glibc only). Returns True when the settings took effect,
    False where they do not apply (not glibc, or ``FACELIVT_MALLOC=default`` in the environment).

    ``mmap_threshold`` is capped by glibc at 32 MiB on 64-bit systems."""
    if os.environ.get(ENV_OPT_OUT, "").strip().lower() == "default":
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = True
    for param, value in ((M_MMAP_THRESHOLD, mmap_threshold), (M_TRIM_THRESHOLD, trim_threshold), (M_TOP_PAD, top_pad)):
        ok = mallopt(param, int(value)) == 1 and ok
    return ok
