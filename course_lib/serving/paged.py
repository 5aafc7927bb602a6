"""PagedAttention's memory side: a KV cache cut into fixed-size blocks, handed out on demand.

vLLM (Kwon et al., *Efficient Memory Management for Large Language Model Serving with
PagedAttention*, SOSP'23) stores each sequence's keys and values in **blocks** of ``block_size``
positions that need not be contiguous, like pages of virtual memory:

- §4.1: attention reads a sequence's keys block by block, through its block table;
- §4.2: the KV cache manager keeps one **block table** per sequence (logical block ``i`` → a
  physical block) and a free list of physical blocks; a block is allocated only when the previous
  one is full, so a sequence wastes less than one block, where a slot cache
  (:class:`~course_lib.serving.slots.SlotKVCache`) reserves ``max_len`` positions for every request;
- §4.4: sequences that share a prefix (a system prompt, parallel samples of one prompt) point to
  the same physical blocks, with a **reference count** per block; writing into a shared block
  first copies it (**copy-on-write**), and a block returns to the free list when its count drops to 0;
- §4.5: when no block is free the scheduler preempts a sequence (the exercise of chapter 13).

:class:`BlockAllocator` is the free list with reference counts, :class:`PagedKVManager` the block
tables; :meth:`PagedKVManager.physical_slots` maps a sequence's positions to rows of a pool
``(num_blocks * block_size, ...)``, so ``pool[slots]`` gathers its keys in order.
"""

from __future__ import annotations

import math

import torch


class OutOfBlocks(RuntimeError):
    """No free physical block is left: the scheduler must wait, or preempt a sequence (vLLM §4.5)."""


class BlockAllocator:
    """``num_blocks`` physical blocks: a free list and a reference count per block (vLLM §4.2, §4.4)."""

    def __init__(self, num_blocks: int):
        if not isinstance(num_blocks, int) or num_blocks < 1:
            raise ValueError(f"num_blocks must be a positive int, got {num_blocks!r}")
        self.num_blocks = num_blocks
        self.refcount = [0] * num_blocks
        self._free = list(range(num_blocks - 1, -1, -1))  # a stack: the lowest free id is handed out first

    @property
    def num_free(self) -> int:
        """Blocks on the free list."""
        return len(self._free)

    def allocate(self) -> int:
        """Take a free block (reference count 1); :class:`OutOfBlocks` when none is left."""
        if not self._free:
            raise OutOfBlocks(f"all {self.num_blocks} blocks are in use")
        block = self._free.pop()
        self.refcount[block] = 1
        return block

    def share(self, block: int) -> int:
        """One more sequence points to ``block`` (it must be in use); returns ``block``."""
        self._check_in_use(block)
        self.refcount[block] += 1
        return block

    def release(self, block: int) -> None:
        """One sequence fewer points to ``block``; at 0 it goes back on the free list."""
        self._check_in_use(block)
        self.refcount[block] -= 1
        if self.refcount[block] == 0:
            self._free.append(block)

    def _check_in_use(self, block: int) -> None:
        if not isinstance(block, int) or not 0 <= block < self.num_blocks or self.refcount[block] == 0:
            raise ValueError(f"block must be an allocated block id in [0, {self.num_blocks}), got {block!r}")


class PagedKVManager:
    """Block tables of the running sequences over one :class:`BlockAllocator` (vLLM's KV cache manager, §4.2).

    ``tables[seq_id]`` lists the physical block of each logical block, ``lengths[seq_id]`` the
    positions written. Every method either succeeds or raises before changing anything.
    """

    def __init__(self, num_blocks: int, block_size: int):
        if not isinstance(block_size, int) or block_size < 1:
            raise ValueError(f"block_size must be a positive int, got {block_size!r}")
        self.allocator = BlockAllocator(num_blocks)
        self.block_size = block_size
        self.tables: dict[int, list[int]] = {}
        self.lengths: dict[int, int] = {}

    def blocks_for(self, n_tokens: int) -> int:
        """Blocks that hold ``n_tokens`` positions: ``ceil(n_tokens / block_size)``."""
        return math.ceil(n_tokens / self.block_size)

    def add(self, seq_id: int, n_tokens: int, prefix_of: int | None = None, shared_tokens: int = 0) -> list[int]:
        """A new sequence of ``n_tokens`` (its prompt); returns its block table.

        With ``prefix_of``, its first ``shared_tokens`` positions equal that sequence's: their *full*
        blocks are shared (reference count + 1), the rest is allocated (a partly filled block would be
        written by both, so it is not shared here: :meth:`fork` shares it and copies on write).
        """
        if seq_id in self.tables:
            raise ValueError(f"seq_id {seq_id!r} is already running")
        if not isinstance(n_tokens, int) or n_tokens < 1:
            raise ValueError(f"n_tokens must be a positive int, got {n_tokens!r}")
        if prefix_of is not None and prefix_of not in self.tables:
            raise ValueError(f"prefix_of {prefix_of!r} is not a running sequence")
        limit = min(n_tokens, self.lengths[prefix_of]) if prefix_of is not None else 0
        if not isinstance(shared_tokens, int) or not 0 <= shared_tokens <= limit:
            raise ValueError(f"shared_tokens must be an int in [0, {limit}], got {shared_tokens!r}")
        n_shared = shared_tokens // self.block_size
        self._need(self.blocks_for(n_tokens) - n_shared)
        shared = [self.allocator.share(b) for b in self.tables[prefix_of][:n_shared]] if n_shared else []
        self.tables[seq_id] = shared + [self.allocator.allocate() for _ in range(self.blocks_for(n_tokens) - n_shared)]
        self.lengths[seq_id] = n_tokens
        return self.tables[seq_id]

    def fork(self, parent: int, child: int) -> list[int]:
        """``child`` starts as a copy of ``parent`` sharing all its blocks (parallel sampling, beam search: §4.4)."""
        if parent not in self.tables or child in self.tables:
            raise ValueError(f"parent must be running and child new, got {parent!r} and {child!r}")
        self.tables[child] = [self.allocator.share(b) for b in self.tables[parent]]
        self.lengths[child] = self.lengths[parent]
        return self.tables[child]

    def append(self, seq_id: int) -> tuple[int, int] | None:
        """Room for one more position of ``seq_id``.

        A new block when the last one is full; when the last block is shared, copy-on-write: a
        fresh block replaces it in this table only, and ``(src, dst)`` is returned so the caller
        copies the block's keys/values before writing. ``None`` when no copy is needed.
        """
        table, n = self._table(seq_id), self.lengths[seq_id]
        copy = None
        if n == len(table) * self.block_size:  # the last block is full (or there is none)
            self._need(1)
            table.append(self.allocator.allocate())
        elif self.allocator.refcount[table[-1]] > 1:  # writing into a shared block: copy it first
            self._need(1)
            copy = (table[-1], self.allocator.allocate())
            self.allocator.release(copy[0])
            table[-1] = copy[1]
        self.lengths[seq_id] = n + 1
        return copy

    def free(self, seq_id: int) -> None:
        """The sequence is retired: release each of its blocks (shared ones stay with their other owners)."""
        for block in self._table(seq_id):
            self.allocator.release(block)
        del self.tables[seq_id], self.lengths[seq_id]

    def physical_slots(self, seq_id: int) -> torch.Tensor:
        """Row of a pool ``(num_blocks * block_size, ...)`` for each position ``0..n-1`` of ``seq_id``: ``(n,)``."""
        table, n = torch.tensor(self._table(seq_id)), self.lengths[seq_id]
        pos = torch.arange(n)  # (n,)
        return table[pos // self.block_size] * self.block_size + pos % self.block_size  # (n,)

    def reserved_tokens(self) -> int:
        """Positions held by blocks in use (a shared block counts once)."""
        return (self.allocator.num_blocks - self.allocator.num_free) * self.block_size

    def _table(self, seq_id: int) -> list[int]:
        if seq_id not in self.tables:
            raise ValueError(f"seq_id {seq_id!r} is not a running sequence")
        return self.tables[seq_id]

    def _need(self, blocks: int) -> None:
        if blocks > self.allocator.num_free:
            raise OutOfBlocks(f"need {blocks} blocks, {self.allocator.num_free} free")


def kv_bytes_per_token(config, dtype: torch.dtype = torch.float32) -> int:
    """Bytes of keys and values one position costs in every layer: ``2 · L · H_kv · d_head · sizeof(dtype)``."""
    element = torch.empty((), dtype=dtype).element_size()
    return 2 * config.num_hidden_layers * config.num_key_value_heads * config.head_dim * element
