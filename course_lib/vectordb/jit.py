"""How the vector-search kernels are compiled with numba: cached when it can be, never fast-math.

``cache=True`` when numba finds a writable cache folder (``__pycache__`` next to the module, else the
user cache); on a read-only install without one, numba raises ``RuntimeError`` ("no locator
available") at decoration time and the kernel compiles once per process instead. ``fastmath`` stays
off, so LLVM keeps every float32 sum in the order the source writes it: that is what lets each
compiled kernel equal its NumPy / torch reference bit for bit.
"""

from __future__ import annotations

from numba import njit


def compiled(fn=None, *, inline: bool = False):
    """``fn`` compiled with ``numba.njit(nogil=True)``, cached on disk where numba can write a cache.

    ``@compiled(inline=True)`` pastes a small function into its callers at numba's IR level: a call
    between numba functions passes every array as a dozen scalars on the stack (≈ 10–20 ns), too much
    for one distance or heap step in a loop.
    """
    if fn is None:
        return lambda f: compiled(f, inline=inline)
    opts = {"nogil": True, "inline": "always" if inline else "never"}
    try:
        return njit(cache=True, **opts)(fn)
    except RuntimeError:     # "cannot cache function ...: no locator available" (read-only, no user cache)
        return njit(cache=False, **opts)(fn)
