"""How the vector-search kernels are compiled with numba: cached when it can be, never fast-math.

``cache=True`` when numba finds a writable cache folder (``__pycache__`` next to the module, else the
user cache); on a read-only install without one, numba raises ``RuntimeError`` ("no locator
available") at decoration time and the kernel compiles once per process instead. ``fastmath`` stays
off, so LLVM keeps every float32 sum in the order the source writes it: that is what lets each
compiled kernel equal its NumPy / torch reference bit for bit.
"""

from __future__ import annotations

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic


def compiled(fn=None, *, inline: bool = False):
    """``fn`` compiled with ``numba.njit(nogil=True)``, cached on disk where numba can write a cache.

    ``@compiled(inline=True)`` pastes a small function into its callers at numba's IR level (a call
    between numba functions passes every array as a handful of scalars on the stack), for one distance
    or heap step inside a hot loop.
    """
    if fn is None:
        return lambda f: compiled(f, inline=inline)
    opts = {"nogil": True, "inline": "always" if inline else "never"}
    try:
        return njit(cache=True, **opts)(fn)
    except RuntimeError:     # "cannot cache function ...: no locator available" (read-only, no user cache)
        return njit(cache=False, **opts)(fn)


@intrinsic
def prefetch(typingctx, array, row, col):
    """Ask the CPU to start loading the cache line of ``array[row, col]`` (2-D) now, keeping the rest running.

    LLVM's ``llvm.prefetch`` (read, keep in all cache levels): the compiled form of the
    ``_mm_prefetch`` calls hnswlib makes on the next neighbours' vectors. A hint only: it changes no value.
    ``llvm.prefetch.p0`` is the opaque-pointer name (LLVM ≥ 15, as in the pinned llvmlite).
    """
    if not (isinstance(array, types.Array) and array.ndim == 2):
        return None

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        idx = [context.cast(builder, v, t, types.intp) for v, t in zip(args[1:], signature.args[1:])]
        ptr = cgutils.get_item_pointer(context, builder, signature.args[0], ary, idx, wraparound=False)
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [ptr.type, i32, i32, i32]),
                                            "llvm.prefetch.p0")
        builder.call(fn, [ptr, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return types.void(array, row, col), codegen
