"""Exercise checks of chapter 13 (DevOps): data-parallel gradients by hand, the all-to-all send plan
of expert parallelism, and the memory a rank needs under DDP vs FSDP (ZeRO-3)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from course_lib.exercises import exercise
from course_lib.models.gpt import GPT, GPTConfig


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
        assert err < 1e-6, (f"world_size={world_size}：与整批梯度相差 {err:.2e}。每个「rank」算自己那一份的平均损失的"
                            f"梯度，再对 rank 求平均（all-reduce 求和后除以 world_size）")
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
                                               f"得到 {got.tolist()}。rank r 持有连续的专家 [r·E/W, (r+1)·E/W)，"
                                               f"每个 (token, 专家) 对各发一行")
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
                f"n={n:,}, world_size={w}, sharded={sharded}：应为 {want:,.0f} 字节，得到 {got:,.0f}。fp32 训练每个参数要存"
                f"参数、梯度和 AdamW 的两个矩，各 4 字节；DDP 每个 rank 存全部，FSDP (ZeRO-3) 每个 rank 存 1/W")
    return f"7B 模型、8 个 rank：DDP 每 rank {16 * 7e9 / 2**30:.0f} GiB，FSDP 每 rank {16 * 7e9 / 8 / 2**30:.0f} GiB（激活另算）"
