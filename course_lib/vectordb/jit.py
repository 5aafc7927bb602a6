"""How the vector-search kernels are compiled with numba: cached when it can be, never fast-math.

``cache=True`` when numba finds a writable cache folder (``__pycache__`` next to the module, else the
user cache); on a read-only install without one, numba raises ``RuntimeError`` ("no locator
available") at decoration time and the kernel compiles once per process instead. ``fastmath`` stays
off, so LLVM keeps every float32 sum in the order the source writes it: that is what lets each
compiled kernel equal its NumPy / torch reference bit for bit.
"""

from __future__ import annotations

from numba import njit


def compiled(fn):
    """``fn`` compiled with ``numba.njit(nogil=True)``, cached on disk where numba can write a cache."""
    try:
        return njit(cache=True, nogil=True)(fn)
    except RuntimeError:     # "cannot cache function ...: no locator available" (read-only, no user cache)
        return njit(cache=False, nogil=True)(fn)
