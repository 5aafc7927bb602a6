"""Exercise checks of chapter 13 (DevOps): data-parallel gradients by hand, the all-to-all send plan
of expert parallelism, the memory a rank needs under DDP vs FSDP (ZeRO-3), and preemption when a
paged KV cache runs out of blocks (vLLM, Kwon et al. SOSP'23 §4.5)."""

from __future__ import annotations

from collections import deque

import torch
import torch.nn.functional as F

from course_lib.exercises import exercise
from course_lib.models.gpt import GPT, GPTConfig
from course_lib.serving.paged import PagedKVManager


def _loss(model, batch):
    logits = model(batch[:, :-1]).logits  # (B, T, V)
    return F.cross_entropy(logits.flatten(0, 1), batch[:, 1:].flatten())


def _grads(model):
    return [p.grad.clone() for p in model.parameters()]


def _summed_grads(model, batch, world_size):  # wrong: sums the ranks' gradients instead of averaging
    model.zero_grad()
    for shard in batch.chunk(world_size):
        _loss(model, shard).backward()
    return _grads(model)


def _first_shard_grads(model, batch, world_size):  # wrong: one rank's gradient, never all-reduced
    model.zero_grad()
    _loss(model, batch.chunk(world_size)[0]).backward()
    return _grads(model)


@exercise("13.1", answer="data_parallel_grads", wrong=(_summed_grads, _first_shard_grads), writes_code=True)
def check_data_parallel_grads(fn) -> str:
    """Check exercise 13.1: the learner's data-parallel averaged gradients against one full-batch backward."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=32, n_positions=8, n_embd=16, n_layer=1, n_head=2, dropout=0.0))
    batch = torch.randint(32, (8, 9))  # (B, T + 1)
    model.zero_grad()
    _loss(model, batch).backward()
    full = _grads(model)
    for world_size in (2, 4):
        model.zero_grad()
        got = fn(model, batch, world_size)
        assert isinstance(got, (list, tuple)) and len(got) == len(full), \
            f"应返回每个参数的梯度列表（{len(full)} 个张量），得到 {type(got).__name__}"
        err = max((g - f).abs().max().item() for g, f in zip(got, full))
        # fp32: per-shard means averaged vs one mean over the batch differ only by rounding (~1e-8 here)
        assert err < 1e-6, (f"world_size={world_size}：与整批梯度相差 {err:.2e}。每个 rank 只看到自己那一份；"
                            f"想想 all-reduce 之后怎样才能让每个 rank 手里恰好是整批的梯度")
    return "各 rank 梯度的平均 = 整批的梯度：DDP 的每个副本因此走出完全相同的一步"


def _round_robin(indices, n_experts, world_size):  # wrong: expert e on rank e % W (we split in blocks)
    return torch.bincount((indices % world_size).flatten(), minlength=world_size)


def _tokens_not_pairs(indices, n_experts, world_size):  # wrong: a token counted once per rank it visits
    ranks = indices // (n_experts // world_size)  # (N, K)
    return torch.stack([(ranks == r).any(-1).sum() for r in range(world_size)])


@exercise("13.2", answer="send_counts", wrong=(_round_robin, _tokens_not_pairs), writes_code=True)
def check_send_counts(fn) -> str:
    """Check exercise 13.2: the learner's expert-parallel all-to-all send counts against a ``bincount`` of owning ranks."""
    g = torch.Generator().manual_seed(0)
    for n_experts, world_size, k in ((8, 2, 2), (16, 4, 4), (12, 3, 3)):
        indices = torch.stack([torch.randperm(n_experts, generator=g)[:k] for _ in range(20)])  # (N, K)
        want = torch.bincount((indices // (n_experts // world_size)).flatten(), minlength=world_size)
        got = torch.as_tensor(fn(indices, n_experts, world_size))
        assert got.shape == (world_size,), f"应返回形状 ({world_size},) 的张量，得到 {tuple(got.shape)}"
        assert torch.equal(got.long(), want), (f"{n_experts} 个专家、{world_size} 个 rank、top-{k}：应为 {want.tolist()}，"
                                               f"得到 {got.tolist()}。检查两点：专家怎样分给 rank（连续区间还是轮流），"
                                               f"以及一个词元选中同一 rank 的两个专家时要发几行")
    return "每个 (token, 专家) 对发往持有该专家的 rank：这就是第一次 all-to-all 的 send splits"


@exercise("13.3", answer="bytes_per_rank",
          wrong=(lambda n, w, sharded: 4 * n / w if sharded else 4 * n,
                 lambda n, w, sharded: 16 * n / w,
                 lambda n, w, sharded: 12 * n / w if sharded else 16 * n))
def check_bytes_per_rank(fn) -> str:
    """Check exercise 13.3: the learner's DDP vs FSDP (ZeRO-3) bytes per rank against 16 bytes per parameter."""
    for n, w in ((1_000_000, 2), (7_000_000_000, 8), (34_688, 2)):
        for sharded in (False, True):
            want = 16 * n / (w if sharded else 1)  # fp32 param + grad + AdamW exp_avg + exp_avg_sq
            got = fn(n, w, sharded)
            assert abs(got - want) <= 1e-6 * want, (
                f"n={n:,}, world_size={w}, sharded={sharded}：得到 {got:,.0f} 字节，不对。数一数 AdamW 训练时每个参数"
                f"要存几份状态，再想 ZeRO-3 把其中哪些切开了")
    return f"7B 模型、8 个 rank：DDP 每 rank {16 * 7e9 / 2**30:.0f} GiB，FSDP 每 rank {16 * 7e9 / 8 / 2**30:.0f} GiB（激活另算）"


def _needed(manager: PagedKVManager, running) -> int:
    """New blocks one decode step takes: a full last block needs a fresh one, so does a shared one (copy-on-write)."""
    need = 0
    for seq in running:
        table, n = manager.tables[seq], manager.lengths[seq]
        need += n == len(table) * manager.block_size or manager.allocator.refcount[table[-1]] > 1
    return need


def _make_room(manager, running, waiting):  # the reference: vLLM's recompute preemption, latest arrival first
    preempted = []
    while running and _needed(manager, running) > manager.allocator.num_free:
        seq = running.pop()
        manager.free(seq)
        waiting.appendleft(seq)
        preempted.append(seq)
    return preempted


def _preempt_oldest(manager, running, waiting):  # wrong: evicts the request that has waited longest
    preempted = []
    while running and _needed(manager, running) > manager.allocator.num_free:
        seq = running.pop(0)
        manager.free(seq)
        waiting.appendleft(seq)
        preempted.append(seq)
    return preempted


def _requeue_at_back(manager, running, waiting):  # wrong: a preempted request goes behind newer arrivals
    preempted = []
    while running and _needed(manager, running) > manager.allocator.num_free:
        seq = running.pop()
        manager.free(seq)
        waiting.append(seq)
        preempted.append(seq)
    return preempted


def _every_sequence_needs_a_block(manager, running, waiting):  # wrong: preempts far more than needed
    preempted = []
    while running and len(running) > manager.allocator.num_free:
        seq = running.pop()
        manager.free(seq)
        waiting.appendleft(seq)
        preempted.append(seq)
    return preempted


def _ignores_shared_blocks(manager, running, waiting):  # wrong: forgets copy-on-write of a shared last block
    preempted = []
    while running:
        need = sum(manager.lengths[s] == len(manager.tables[s]) * manager.block_size for s in running)
        if need <= manager.allocator.num_free:
            break
        seq = running.pop()
        manager.free(seq)
        waiting.appendleft(seq)
        preempted.append(seq)
    return preempted


def _scenarios():
    """(name, manager, running, waiting) states just before a decode step; block size 4."""
    def state(num_blocks, lengths, forks=()):
        m = PagedKVManager(num_blocks, 4)
        for seq, n in lengths.items():
            m.add(seq, n)
        for parent, child in forks:
            m.fork(parent, child)
        return m
    yield "空闲块足够", state(6, {0: 3, 1: 4}), [0, 1], deque([7])
    yield "最后一块都没满", state(4, {0: 2, 1: 3, 2: 1}), [0, 1, 2], deque([8])
    yield "缺 1 块", state(5, {0: 4, 1: 8, 2: 2}), [0, 1, 2], deque([5, 6])
    yield "抢占一个还不够", state(4, {0: 8, 1: 4, 2: 4}), [0, 1, 2], deque([9])
    yield "共享的最后一块要复制", state(3, {0: 6}, forks=[(0, 1)]), [0, 1], deque()
    yield "只有一个请求也装不下", state(1, {0: 4}), [0], deque([3])

@exercise("13.4", answer="make_room",
          wrong=(_preempt_oldest, _requeue_at_back, _every_sequence_needs_a_block, _ignores_shared_blocks),
          writes_code=True)
def check_make_room(fn) -> str:
    """Check exercise 13.4: the learner's preemption against vLLM's recompute policy (latest admitted first)."""
    for (name, m, running, waiting), (_, ref_m, ref_running, ref_waiting) in zip(_scenarios(), _scenarios()):
        want = _make_room(ref_m, ref_running, ref_waiting)
        got = fn(m, running, waiting)
        assert list(got or []) == want, f"「{name}」：应抢占 {want}（按抢占的先后），得到 {got}"
        assert running == ref_running, f"「{name}」：抢占后 running 应为 {ref_running}，得到 {running}"
        assert list(waiting) == list(ref_waiting), f"「{name}」：抢占后 waiting 应为 {list(ref_waiting)}，得到 {list(waiting)}"
        assert m.tables.keys() == ref_m.tables.keys() and m.allocator.num_free == ref_m.allocator.num_free, \
            f"「{name}」：被抢占的请求的块要还回空闲链表 (free list)"
        for seq in running:  # the decode step now fits
            m.append(seq)
    return "块不够时从最后加入的请求开始抢占，放回等待队列最前面，稍后重新预填充 (recompute)：这正是 vLLM 的默认策略"
