"""course_lib.serving.paged: the PagedAttention block table against a contiguous cache, and its invariants.

The reference is the plainest cache there is: one Python list of values per sequence. Each
operation (add with or without a shared prefix, fork, append, free) is applied to both; values are
written into a pool tensor through :meth:`PagedKVManager.physical_slots` (copying a block when
``append`` asks for copy-on-write), and gathering ``pool[slots]`` must give every running
sequence's list back. Hypothesis drives random operation sequences; after every step no block is
free and owned, a block's reference count is the number of tables holding it, and once every
sequence is retired all blocks are free again.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.models.llama import LlamaConfig
from course_lib.serving.paged import BlockAllocator, OutOfBlocks, PagedKVManager, kv_bytes_per_token
from course_lib.serving.slots import SlotKVCache

BLOCKS, BLOCK_SIZE = 12, 4


class Mirror:
    """A manager, a pool of values written through its block tables, and per-sequence reference lists."""

    def __init__(self):
        self.m = PagedKVManager(BLOCKS, BLOCK_SIZE)
        self.pool = torch.full((BLOCKS * BLOCK_SIZE,), -1, dtype=torch.long)  # one value per position
        self.ref: dict[int, list[int]] = {}
        self.values = itertools.count()
        self.ids = itertools.count()

    def write(self, seq: int, positions: range) -> None:
        slots = self.m.physical_slots(seq)
        for p in positions:
            self.pool[slots[p]] = self.ref[seq][p]

    def add(self, n: int, prefix_of: int | None, shared: int) -> None:
        seq = next(self.ids)
        head = self.ref[prefix_of][:shared] if prefix_of is not None else []
        self.m.add(seq, n, prefix_of, shared)
        self.ref[seq] = head + [next(self.values) for _ in range(n - len(head))]
        self.write(seq, range(shared // BLOCK_SIZE * BLOCK_SIZE, n))  # shared full blocks hold their values already

    def fork(self, parent: int) -> None:
        child = next(self.ids)
        self.m.fork(parent, child)
        self.ref[child] = list(self.ref[parent])

    def append(self, seq: int) -> None:
        copy = self.m.append(seq)
        if copy is not None:  # copy-on-write: the caller copies the block before writing into it
            src, dst = copy
            self.pool[dst * BLOCK_SIZE:(dst + 1) * BLOCK_SIZE] = self.pool[src * BLOCK_SIZE:(src + 1) * BLOCK_SIZE]
        self.ref[seq].append(next(self.values))
        self.write(seq, range(len(self.ref[seq]) - 1, len(self.ref[seq])))

    def free(self, seq: int) -> None:
        self.m.free(seq)
        del self.ref[seq]

    def check(self) -> None:
        alloc = self.m.allocator
        owned = [b for table in self.m.tables.values() for b in table]
        free = alloc._free
        assert len(set(free)) == len(free), "a block is on the free list twice"
        assert not set(free) & set(owned), "a block is both free and owned"
        assert len(free) + len(set(owned)) == BLOCKS, "a block is lost (neither free nor owned)"
        for b in range(BLOCKS):
            assert alloc.refcount[b] == owned.count(b), f"block {b}: refcount {alloc.refcount[b]}, {owned.count(b)} owners"
        for seq, table in self.m.tables.items():
            assert len(set(table)) == len(table), f"sequence {seq} holds a block twice"
            assert len(table) == self.m.blocks_for(self.m.lengths[seq]) == self.m.blocks_for(len(self.ref[seq]))
            assert self.pool[self.m.physical_slots(seq)].tolist() == self.ref[seq], f"sequence {seq} reads wrong values"
        assert self.m.reserved_tokens() == len(set(owned)) * BLOCK_SIZE


operation = st.tuples(st.sampled_from(["add", "prefix", "fork", "append", "append", "append", "free"]),
                      st.integers(0, 1000), st.integers(1, 14), st.integers(0, 14))


@settings(max_examples=150, deadline=None)
@given(st.lists(operation, max_size=40))
def test_random_operations_keep_the_block_table_right(ops):
    mirror = Mirror()
    for kind, pick, n, shared in ops:
        running = sorted(mirror.ref)
        seq = running[pick % len(running)] if running else None
        try:
            if kind == "add" or seq is None:
                mirror.add(n, None, 0)
            elif kind == "prefix":
                mirror.add(n, seq, min(shared, n, len(mirror.ref[seq])))
            elif kind == "fork":
                mirror.fork(seq)
            elif kind == "append":
                mirror.append(seq)
            else:
                mirror.free(seq)
        except OutOfBlocks:
            pass  # the pool is full: nothing may have changed, which check() verifies
        mirror.check()
    for seq in list(mirror.ref):
        mirror.free(seq)
    mirror.check()
    assert mirror.m.allocator.num_free == BLOCKS and mirror.m.tables == {}


def test_shared_prefix_counts_references_and_copies_on_write():
    m = PagedKVManager(num_blocks=8, block_size=4)
    a = m.add(0, 10)  # 3 blocks: 4 + 4 + 2
    b = m.add(1, 12, prefix_of=0, shared_tokens=9)  # positions 0..7 are two full shared blocks
    assert b[:2] == a[:2] and b[2] not in a
    assert [m.allocator.refcount[x] for x in a] == [2, 2, 1]
    assert m.allocator.num_free == 8 - 4
    m.free(0)  # the shared blocks stay with sequence 1
    assert [m.allocator.refcount[x] for x in b] == [1, 1, 1] and m.allocator.num_free == 8 - 3
    c = m.fork(1, 2)  # shares all 3 blocks (the last one is full)
    assert c == b and all(m.allocator.refcount[x] == 2 for x in b)
    assert m.append(2) is None and len(m.tables[2]) == 4  # 12 positions = 3 full blocks: a new block, no copy
    m.fork(2, 3)
    src, dst = m.append(3)  # the last block (1 of 4 positions) is shared by 2 and 3: copy on write
    assert src == m.tables[2][-1] and dst == m.tables[3][-1] and src != dst
    assert m.allocator.refcount[src] == 1 and m.allocator.refcount[dst] == 1
    for seq in (1, 2, 3):
        m.free(seq)
    assert m.allocator.num_free == 8 and m.allocator.refcount == [0] * 8


def test_out_of_blocks_changes_nothing():
    m = PagedKVManager(num_blocks=3, block_size=4)
    m.add(0, 8)
    with pytest.raises(OutOfBlocks, match="need 2 blocks, 1 free"):
        m.add(1, 5)
    assert 1 not in m.tables and m.allocator.num_free == 1
    m.add(1, 4)
    with pytest.raises(OutOfBlocks):
        m.append(1)  # its only block is full
    assert m.lengths[1] == 4 and len(m.tables[1]) == 1


def test_blocks_are_handed_out_lowest_first_and_reused():
    alloc = BlockAllocator(4)
    assert [alloc.allocate() for _ in range(3)] == [0, 1, 2]
    alloc.release(1)
    assert alloc.allocate() == 1 and alloc.num_free == 1


@pytest.mark.parametrize("call, match", [
    (lambda: BlockAllocator(0), "num_blocks must be a positive int"),
    (lambda: PagedKVManager(4, 0), "block_size must be a positive int"),
    (lambda: BlockAllocator(4).release(0), "block must be an allocated block id"),
    (lambda: BlockAllocator(4).share(7), "block must be an allocated block id"),
    (lambda: PagedKVManager(4, 2).add(0, 0), "n_tokens must be a positive int"),
    (lambda: PagedKVManager(4, 2).append(5), "seq_id 5 is not a running sequence"),
    (lambda: PagedKVManager(4, 2).add(0, 3, prefix_of=9, shared_tokens=1), "prefix_of 9 is not a running sequence"),
])
def test_bad_input_is_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_shared_tokens_beyond_the_prefix_is_refused():
    m = PagedKVManager(8, 2)
    m.add(0, 3)
    with pytest.raises(ValueError, match=r"shared_tokens must be an int in \[0, 3\]"):
        m.add(1, 6, prefix_of=0, shared_tokens=4)
    with pytest.raises(ValueError, match="seq_id 0 is already running"):
        m.add(0, 2)


def test_kv_bytes_per_token_matches_the_slot_cache():
    config = LlamaConfig(num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, head_dim=8)
    slots, max_len = 2, 16
    cache = SlotKVCache(config, slots, max_len)
    assert kv_bytes_per_token(config) * slots * max_len == cache.nbytes()
    assert kv_bytes_per_token(config, torch.float16) * 2 == kv_bytes_per_token(config)
