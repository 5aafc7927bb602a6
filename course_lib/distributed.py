"""Data, sharded and expert parallelism on ``torch.distributed`` (one script for CPU/gloo and GPU/NCCL).

``torchrun --nproc_per_node N script.py`` starts N processes and gives each the environment
variables ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``;
:func:`init_process_group` reads them and picks the backend from the hardware (NCCL on CUDA,
gloo on the CPU), so the same script runs unchanged on both.

- **DDP** (data parallel; Li et al., *PyTorch Distributed*, VLDB 2020): every rank holds the whole
  model and a slice of the batch; backward all-reduces the gradients in buckets while it runs, so
  all replicas take the same step. With equal slices and a mean loss the averaged gradient is the
  gradient of the full batch: :func:`wrap_ddp`, :func:`shard_batch`.
- **FSDP** (fully sharded data parallel; ZeRO-3, Rajbhandari et al. SC 2020; PyTorch FSDP, Zhao et
  al. VLDB 2023): each rank keeps 1/N of every parameter, gradient and optimizer state; a layer's
  full weights are all-gathered just before its forward/backward and freed after, gradients are
  reduce-scattered. :func:`wrap_fsdp` uses FSDP2 (``torch.distributed.fsdp.fully_shard``, parameters
  become ``DTensor`` shards), which runs on the CPU with gloo in torch 2.13; the older
  ``FullyShardedDataParallel`` wrapper refuses to start without an accelerator.
- **Expert parallelism** (GShard, Lepikhin et al. 2020 §2.2; Switch Transformer, Fedus et al. 2021
  §2.2): the experts of a MoE layer are split over ranks; each rank routes its own tokens, sends
  each token to the rank holding its expert with an all-to-all, and gets the outputs back with a
  second all-to-all: :class:`ExpertParallelMoE`, built from our :class:`DeepSeekMoE`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from course_lib.checks import check_hidden
from course_lib.models.deepseek.moe import DeepSeekMoE

TORCHRUN_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits: its rank, the number of ranks, its device and the backend."""
    rank: int                # 0 … world_size − 1, over all nodes
    local_rank: int          # index on this node (which GPU)
    world_size: int          # number of processes
    device: torch.device     # cuda:LOCAL_RANK with NCCL, cpu with gloo
    backend: str             # "nccl" or "gloo"

    @property
    def is_main(self) -> bool:
        """True on rank 0, the process that writes logs and checkpoints."""
        return self.rank == 0


def launched_by_torchrun() -> bool:
    """True when every variable torchrun sets is present."""
    return all(name in os.environ for name in TORCHRUN_VARS)


def init_process_group(backend: str | None = None) -> DistEnv:
    """Join the process group described by torchrun's environment variables.

    ``backend`` defaults to ``"nccl"`` when CUDA is available (one GPU per local rank) and
    ``"gloo"`` otherwise. Without torchrun's variables this is a single process: no group is
    created and the :class:`DistEnv` says rank 0 of 1.
    """
    if backend not in (None, "gloo", "nccl"):
        raise ValueError(f"backend must be None, 'gloo' or 'nccl', got {backend!r}")
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if not launched_by_torchrun():
        device = torch.device("cuda" if backend == "nccl" else "cpu")
        return DistEnv(0, 0, 1, device, backend)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    world_size = int(os.environ["WORLD_SIZE"])
    device = torch.device("cpu")
    if backend == "nccl":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend, rank=rank, world_size=world_size,
                                device_id=device if backend == "nccl" else None)
    return DistEnv(rank, local_rank, world_size, device, backend)


def destroy_process_group() -> None:
    """Leave the process group (a no-op in a single process); call it before the script exits."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now (for ``MASTER_PORT`` / ``--rdzv-endpoint``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def torchrun(script: str | os.PathLike, args: list[str] = (), nproc: int = 2, timeout: float = 300.0,
             threads: int = 1, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``torchrun --nproc_per_node nproc script args`` on loopback and wait for it.

    Rendezvous on ``127.0.0.1`` at a free port (the form many nodes use with a real host name).
    torchrun and its workers get their own session, so a timeout kills the whole group: no
    orphans. ``env`` adds environment variables (e.g. ``CUDA_VISIBLE_DEVICES=""`` to stay on
    the CPU). Returns the completed process (``stdout`` with ``stderr`` merged); raises
    ``RuntimeError`` with the output's tail on a non-zero exit.
    """
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", str(nproc),
           "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{free_port()}", str(script), *map(str, args)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), **(env or {})}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    if proc.returncode:
        raise RuntimeError(f"torchrun exited with {proc.returncode}:\n{out[-3000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out)


def world() -> tuple[int, int]:
    """``(rank, world_size)``: ``(0, 1)`` outside a process group."""
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def shard_batch(batch: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """Rows ``[rank·B/W, (rank+1)·B/W)`` of a global batch ``(B, …)``; B must divide evenly.

    Equal slices keep DDP exact: the mean of the W per-rank mean losses is the full batch's mean.
    """
    if not isinstance(batch, torch.Tensor) or batch.dim() == 0:
        raise TypeError(f"batch must be a tensor with a batch dimension, got {type(batch).__name__}")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
    if batch.shape[0] % world_size:
        raise ValueError(f"batch size {batch.shape[0]} must be divisible by world_size={world_size}")
    per_rank = batch.shape[0] // world_size
    return batch[rank * per_rank:(rank + 1) * per_rank]


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """Average ``tensor`` over all ranks, in place (e.g. a loss for logging); unchanged in one process."""
    if dist.is_initialized():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor /= dist.get_world_size()
    return tensor


def all_reduce_grads(params) -> None:
    """Sum the gradients of ``params`` over all ranks (what DDP does, done by hand, unbucketed)."""
    if dist.is_initialized():
        for p in params:
            if p.grad is not None:
                dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)


def wrap_ddp(model: nn.Module, env: DistEnv) -> nn.Module:
    """``DistributedDataParallel`` on the rank's device (the model itself in a single process)."""
    model = model.to(env.device)
    if env.world_size == 1:
        return model
    ids = [env.device.index] if env.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def wrap_fsdp(model: nn.Module, env: DistEnv, blocks: list[nn.Module] | nn.ModuleList) -> nn.Module:
    """Shard ``model`` with FSDP2: each of ``blocks`` (e.g. the Transformer layers) is one unit
    whose parameters are all-gathered together, the root holds the rest (embeddings, final norm).

    Returns the same module object, now holding ``DTensor`` shards (``p.full_tensor()`` gathers one).
    """
    from torch.distributed.fsdp import fully_shard

    model = model.to(env.device)
    if env.world_size == 1:
        return model
    for block in blocks:
        fully_shard(block)
    return fully_shard(model)


class _AllToAll(torch.autograd.Function):
    """``dist.all_to_all_single`` with autograd: the backward sends gradients back along the same
    routes (the all-to-all with send and receive splits swapped)."""

    @staticmethod
    def forward(ctx, x, send_splits: list[int], recv_splits: list[int]):
        ctx.splits = (send_splits, recv_splits)
        out = x.new_empty(sum(recv_splits), *x.shape[1:])
        dist.all_to_all_single(out, x.contiguous(), recv_splits, send_splits)
        return out

    @staticmethod
    def backward(ctx, grad):
        send_splits, recv_splits = ctx.splits
        return _AllToAll.apply(grad.contiguous(), recv_splits, send_splits), None, None


def all_to_all(x: torch.Tensor, send_splits: list[int], recv_splits: list[int]) -> torch.Tensor:
    """Send rows ``x[sum(send[:j]) : sum(send[:j+1])]`` to rank j; receive ``recv[j]`` rows from rank j.

    Differentiable. ``x`` ``(sum(send), …)`` → ``(sum(recv), …)``, rows grouped by source rank.
    """
    return _AllToAll.apply(x, list(send_splits), list(recv_splits))


class ExpertParallelMoE(nn.Module):
    """DeepSeekMoE with its routed experts split over the ranks (GShard §2.2, Switch §2.2).

    Rank r holds experts ``[r·E/W, (r+1)·E/W)``; the router and the shared experts are replicated
    (their gradients are summed over ranks like DDP's: :func:`all_reduce_grads` on ``gate`` and
    ``shared_experts``). Forward on this rank's tokens ``(B, T, d)``:

    1. route every token (top-K experts, gate values g);
    2. sort the N·K (token, expert) pairs by expert, i.e. by destination rank, and all-to-all the
       token vectors (first exchanging how many rows go where);
    3. each rank runs its experts on the rows it received;
    4. all-to-all the outputs back, weight them by g and sum them into their tokens (+ shared experts).

    No capacity factor: every token reaches its experts (GShard drops overflow tokens), so the
    output equals the single-process layer.
    """

    def __init__(self, moe: DeepSeekMoE, rank: int, world_size: int):
        super().__init__()
        if not isinstance(moe, DeepSeekMoE):
            raise TypeError(f"moe must be a DeepSeekMoE, got {type(moe).__name__}")
        n = moe.config.n_routed_experts
        if n % world_size:
            raise ValueError(f"n_routed_experts={n} must be divisible by world_size={world_size}")
        self.config, self.rank, self.world_size = moe.config, rank, world_size
        self.per_rank = n // world_size
        self.gate = moe.gate
        self.shared_experts = moe.shared_experts
        first = rank * self.per_rank
        self.experts = nn.ModuleList(moe.experts[first:first + self.per_rank])  # this rank's experts only

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, T, d)`` (this rank's tokens) → ``(B, T, d)``."""
        check_hidden(x, self.config.hidden_size)
        flat = x.reshape(-1, x.shape[-1])  # (N, d)
        routing = self.gate(flat)
        expert = routing.indices.flatten()  # (N·K,) expert of each (token, slot) pair
        order = expert.argsort(stable=True)  # pairs sorted by expert = by destination rank
        token = order // self.config.num_experts_per_tok  # (N·K,) source token of each sorted pair
        send = torch.bincount(expert // self.per_rank, minlength=self.world_size)  # (W,) rows per rank
        recv = torch.empty_like(send)
        dist.all_to_all_single(recv, send)  # how many rows each rank will send us
        send_splits, recv_splits = send.tolist(), recv.tolist()
        rows = all_to_all(flat[token], send_splits, recv_splits)  # (M, d) tokens for our experts
        local = all_to_all(expert[order, None], send_splits, recv_splits)[:, 0] - self.rank * self.per_rank  # (M,)
        out_rows = torch.zeros_like(rows)  # (M, d)
        for e in local.unique().tolist():
            pick = torch.where(local == e)[0]
            out_rows = out_rows.index_put((pick,), self.experts[e](rows[pick]))
        back = all_to_all(out_rows, recv_splits, send_splits)  # (N·K, d), same order as `order`
        gates = routing.weights.flatten()[order, None].to(flat.dtype)  # (N·K, 1)
        out = torch.zeros_like(flat).index_add(0, token, back * gates)
        if self.shared_experts is not None:
            out = out + self.shared_experts(flat)
        return out.view_as(x)

    def replicated_parameters(self) -> list[nn.Parameter]:
        """Parameters every rank holds (router, shared experts): sum their gradients over ranks."""
        shared = list(self.shared_experts.parameters()) if self.shared_experts is not None else []
        return list(self.gate.parameters()) + shared
