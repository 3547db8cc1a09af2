"""Memory the server gives back after a burst: large blocks mapped from the system and
unmapped when freed.

glibc raises its mmap threshold each time a large mapped block is freed (up to 32 MB);
blocks under the raised threshold then come from its heaps, which it returns to the
system only from their top. After a burst of large images the server kept about 100 MB
it no longer used (400 MB in another reading). A fixed threshold (``mallopt(M_MMAP_THRESHOLD)``,
which also turns the raising off) maps every block over it (a decoded image, its resize,
a request's body) and unmaps it when freed: benchmarks/serve_load.py's burst then leaves
+16 MB, not +100 MB. glibc only; elsewhere nothing changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger("pipeline.serve")

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter (malloc.h)
THRESHOLD = 1 << 20  # bytes: blocks this large or larger are mapped, and unmapped on free


def return_large_blocks(threshold: int = THRESHOLD) -> bool:
    """Set glibc's mmap threshold to ``threshold`` for this process; False where it cannot."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        done = bool(libc.mallopt(M_MMAP_THRESHOLD, threshold))
    except (OSError, AttributeError, TypeError):  # not glibc (musl, macOS) or no libc found
        done = False
    log.debug("serve: large blocks %s", "mapped and unmapped" if done else "as the allocator "
              "does (no glibc mallopt)")
    return done
