"""Peak tensor memory of a function, on any device, without CUDA's allocator statistics.

``torch.cuda.max_memory_allocated`` exists only on CUDA. Here a ``TorchDispatchMode`` sees every
operator's outputs; each new storage adds its bytes to a running total and a weak-reference
finaliser subtracts them when the last tensor using that storage is freed. The peak of that total
is the most tensor memory the function held at once (beyond its inputs). Memory a kernel uses
internally without returning it as a tensor (scratch buffers) is not visible, so fused kernels
such as ``F.scaled_dot_product_attention`` read low by their scratch size.

The count is the same on the CPU and on CUDA (a CUDA storage's ``data_ptr`` is a device address,
unique while the storage lives, like a CPU one), so a notebook's small CPU run and its full GPU run
report comparable numbers; CUDA's allocator would add its block rounding and cuBLAS workspaces.
Timings on CUDA must wait for the queued kernels first: :func:`synchronize`.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from course_lib.checks import check_device


class _LiveBytes(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.current = 0
        self.peak = 0
        self.live: dict[int, list[int]] = {}  # storage data_ptr -> [bytes, tensors using it]

    def _release(self, ptr: int) -> None:
        entry = self.live.get(ptr)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            self.current -= entry[0]
            del self.live[ptr]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {t.untyped_storage().data_ptr() for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
        for t in tree_leaves(out):
            if not isinstance(t, torch.Tensor):
                continue
            ptr = t.untyped_storage().data_ptr()
            if ptr in self.live:  # a view or an in-place result of a tensor we already count
                self.live[ptr][1] += 1
            elif ptr in inputs or ptr == 0:  # a view of an input created outside, or an empty tensor
                continue
            else:
                nbytes = t.untyped_storage().nbytes()
                self.live[ptr] = [nbytes, 1]
                self.current += nbytes
                self.peak = max(self.peak, self.current)
            weakref.finalize(t, self._release, ptr)
        return out


def synchronize(device: torch.device | str) -> None:
    """Wait until every kernel queued on ``device`` has finished (CUDA); a no-op on the CPU and other devices.

    CUDA launches kernels asynchronously, so ``time.perf_counter()`` around a step measures only the
    launches unless the clock is read after this.
    """
    if check_device(device).type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory(fn: Callable[[], object]) -> tuple[object, int]:
    """Run ``fn()`` and return ``(its result, peak bytes of tensors it allocated and held at once)``."""
    if not callable(fn):
        raise TypeError(f"fn must be callable with no arguments, got {type(fn).__name__}")
    mode = _LiveBytes()
    with mode:
        result = fn()
    return result, mode.peak
