"""Keep the engine's large buffers in the process's heap from one clip to the next (glibc).

A 30-s clip passes through a few dozen 11-MB buffers (stems, the mix, the reverb, mastering).
glibc serves every allocation over its mmap threshold (128 KiB, raised on the fly to at most
32 MiB) with a fresh mapping and hands it back on free, and trims the heap's free top back to
the kernel, so each clip faulted in (and the kernel zeroed) the same memory again: a sixth of
`art2mus generate`'s CPU time was system time, much of it those page faults (88,000 of them
over 24 clips; 50,000 now). Raising both thresholds keeps those pages in the heap for the
next clip; the heap then holds at most the peak of one clip's buffers plus
:data:`TRIM_THRESHOLD` of free memory. Elsewhere than glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform
from functools import lru_cache

# mallopt parameters (glibc's malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 64 * 1024 * 1024  # larger than any buffer of a clip (the biggest: 23 MB)
TRIM_THRESHOLD = 128 * 1024 * 1024


@lru_cache(maxsize=1)
def keep_freed_buffers() -> bool:
    """Tell glibc's malloc to keep freed clip buffers for reuse; True when it was told."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
