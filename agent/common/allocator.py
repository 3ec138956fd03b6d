"""Keep freed memory in the process instead of handing it back to the OS (glibc only).

An RL update allocates and frees the same few hundred-KB activations thousands of times a
second. With glibc's defaults, buffers above the mmap threshold, and the free top of the heap
beyond the trim threshold, go back to the kernel on free, so the next update takes a fresh
page fault on every 4 KB it touches (~900 faults per SAC update with bf16 activations on a KVM
guest here, see bench/sac_vs_sb3.py). Fixing both thresholds keeps those pages mapped; the
process's peak memory is unchanged, it is just not returned early. Elsewhere (macOS, musl) this
does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
#: glibc's largest mmap threshold on 64-bit systems (DEFAULT_MMAP_THRESHOLD_MAX)
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024


@functools.cache
def keep_freed_memory() -> bool:
    """Set glibc's trim and mmap thresholds once per process; True if they were set."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX) and mallopt(M_TRIM_THRESHOLD, 1 << 30)
    )
