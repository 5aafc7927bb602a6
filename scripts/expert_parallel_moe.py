"""One forward and backward pass of an expert-parallel DeepSeekMoE layer; writes what to compare.

    torchrun --standalone --nproc_per_node 2 scripts/expert_parallel_moe.py --out runs/ep

Every rank builds the same layer and the same global batch (seeded), keeps its slice of the batch
and its block of experts (``course_lib.distributed.ExpertParallelMoE``), and runs forward and
backward with the loss ``(out · w).sum()``; the gradients of the replicated router and shared
experts are summed over ranks. Rank 0 writes ``inputs.pt`` (config, initial state dict, x, w) and
every rank writes ``rank{r}.pt`` (its output, input gradient and its parameters' gradients, by the
single-process layer's names), so a test or a notebook can compare them with one ``DeepSeekMoE``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import torch

from course_lib import distributed
from course_lib.models.deepseek.moe import DeepSeekMoE, MoEConfig


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--experts", type=int, default=8, help="routed experts (divisible by the world size)")
    p.add_argument("--top-k", type=int, default=2)
    p.add_argument("--hidden", type=int, default=16)
    p.add_argument("--tokens", type=int, default=5, help="tokens per sequence; 2 sequences per rank")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def build(args, world_size: int):
    torch.manual_seed(args.seed)
    config = MoEConfig(hidden_size=args.hidden, moe_intermediate_size=8, n_routed_experts=args.experts,
                       num_experts_per_tok=args.top_k, n_shared_experts=1, n_group=2, topk_group=2,
                       routed_scaling_factor=2.5)
    moe = DeepSeekMoE(config)
    for p in moe.parameters():
        p.data.normal_(0, 0.3)
    moe.gate.e_score_correction_bias.normal_(0, 0.1)  # a non-zero bias: the biased routing path is used
    x = torch.randn(2 * world_size, args.tokens, args.hidden)  # (B, T, d): 2 sequences per rank
    w = torch.randn_like(x)  # the loss (out · w).sum() weighs every output element
    return config, moe, x, w


def main(argv=None) -> None:
    args = parse_args(argv)
    env = distributed.init_process_group("gloo")  # a tiny layer: CPU processes on any machine
    try:
        config, moe, x, w = build(args, env.world_size)
        if env.is_main:
            args.out.mkdir(parents=True, exist_ok=True)
            torch.save({"config": dataclasses.asdict(config), "state_dict": moe.state_dict(), "x": x, "w": w},
                       args.out / "inputs.pt")
        ep = distributed.ExpertParallelMoE(moe, env.rank, env.world_size)
        x_local = distributed.shard_batch(x, env.rank, env.world_size).clone().requires_grad_()
        out = ep(x_local)  # (2, T, d)
        (out * distributed.shard_batch(w, env.rank, env.world_size)).sum().backward()
        distributed.all_reduce_grads(ep.replicated_parameters())
        first = env.rank * ep.per_rank
        grads = {f"experts.{first + i}.{n}": p.grad for i, e in enumerate(ep.experts) for n, p in e.named_parameters()}
        grads |= {n: p.grad for n, p in ep.named_parameters() if not n.startswith("experts.")}
        if env.world_size > 1:
            torch.distributed.barrier()  # rank 0 has created the folder
        torch.save({"out": out.detach(), "x_grad": x_local.grad, "grads": grads}, args.out / f"rank{env.rank}.pt")
        line = f"rank {env.rank}: experts {first}…{first + ep.per_rank - 1}, {x_local.shape[0] * x_local.shape[1]} tokens\n"
        sys.stdout.write(line)  # one write per line: the ranks share torchrun's stdout
        sys.stdout.flush()
    finally:
        distributed.destroy_process_group()


if __name__ == "__main__":
    main()
