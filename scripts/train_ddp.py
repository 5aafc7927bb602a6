"""Train a small GPT on the Python docs (bytes) with DDP or FSDP; the same file on CPUs and GPUs.

    torchrun --standalone --nproc_per_node 2 scripts/train_ddp.py --mode ddp --steps 20 --out runs/ddp
    torchrun --standalone --nproc_per_node 2 scripts/train_ddp.py --mode fsdp --steps 20 --out runs/fsdp
    python scripts/train_ddp.py --steps 20 --out runs/single        # one process, the full batch

Many nodes (run on every node; node 0's address as the rendezvous endpoint)::

    torchrun --nnodes 4 --nproc_per_node 8 --rdzv-id job42 --rdzv-backend c10d \\
             --rdzv-endpoint node0.example:29400 scripts/train_ddp.py --mode fsdp ...

Every step draws the same global batch on every rank (a generator seeded by seed and step) and
each rank keeps its slice, so a W-process run sees exactly the batches of a one-process run.
Rank 0 writes TensorBoard scalars to ``--log-dir`` and checkpoints (course_lib.checkpoint) to
``--out/step_NNNNNN`` every ``--save-every`` steps and at the end; ``--resume`` continues from the
latest one, bit-identically (a checkpoint holds full, unsharded state, so it resumes under any
world size; DDP and one-process checkpoints are interchangeable, FSDP ones resume under FSDP). ``summary.json`` in ``--out`` lists the global mean loss of every step.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F

from course_lib import checkpoint, distributed
from course_lib.data import python_docs_text
from course_lib.models.gpt import GPT, GPTConfig
from course_lib.tracking import Tracker


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mode", choices=("ddp", "fsdp"), default="ddp", help="data parallel or fully sharded")
    p.add_argument("--steps", type=int, default=20, help="optimizer steps in total (a resumed run stops there too)")
    p.add_argument("--batch-size", type=int, default=8, help="GLOBAL batch: sequences per step over all ranks")
    p.add_argument("--seq-len", type=int, default=32)
    p.add_argument("--n-layer", type=int, default=2)
    p.add_argument("--n-embd", type=int, default=32)
    p.add_argument("--n-head", type=int, default=2)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--warmup", type=int, default=5, help="linear warm-up steps, then cosine decay to 10%%")
    p.add_argument("--clip", type=float, default=1.0, help="gradient-norm clipping (0: off)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--corpus-chars", type=int, default=200_000, help="bytes of the Python docs to sample from")
    p.add_argument("--out", type=Path, required=True, help="checkpoints and summary.json go here")
    p.add_argument("--log-dir", type=Path, default=None, help="TensorBoard log directory (default: OUT/tb)")
    p.add_argument("--save-every", type=int, default=0, help="checkpoint every K steps (0: only at the end)")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    args = p.parse_args(argv)
    if args.steps <= 0 or args.batch_size <= 0 or args.save_every < 0:
        p.error("--steps and --batch-size must be positive, --save-every >= 0")
    return args


def get_batch(data: torch.Tensor, step: int, args) -> torch.Tensor:
    """The global batch of ``step`` ``(B, T + 1)``: the same on every rank, whatever the world size."""
    g = torch.Generator().manual_seed(args.seed * 1_000_003 + step)
    starts = torch.randint(len(data) - args.seq_len - 1, (args.batch_size,), generator=g)
    return torch.stack([data[s:s + args.seq_len + 1] for s in starts.tolist()])


def lr_lambda(args):
    def f(step: int) -> float:
        if step < args.warmup:
            return (step + 1) / args.warmup
        progress = (step - args.warmup) / max(1, args.steps - args.warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return f


def full_state(model, optimizer, args):
    """Unsharded model and optimizer state dicts (FSDP: gathered on every rank, optimizer keyed by name)."""
    if args.mode == "fsdp":  # torch.distributed.checkpoint is imported only here: it costs seconds to import
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

        return get_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return getattr(model, "module", model).state_dict(), optimizer.state_dict()  # DDP: every replica is whole


def load_full_state(model, optimizer, model_sd, optim_sd, args) -> None:
    if args.mode == "fsdp":
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

        set_state_dict(model, optimizer, model_state_dict=model_sd, optim_state_dict=optim_sd,
                       options=StateDictOptions(full_state_dict=True))
    else:
        getattr(model, "module", model).load_state_dict(model_sd)
        optimizer.load_state_dict(optim_sd)


def save(model, optimizer, scheduler, step, args, config, env) -> None:
    """Gather full (unsharded) state on every rank, the RNG state of every rank; rank 0 writes."""
    model_sd, optim_sd = full_state(model, optimizer, args)
    rngs = [checkpoint.rng_state()]
    if env.world_size > 1:
        rngs = [None] * env.world_size
        dist.all_gather_object(rngs, checkpoint.rng_state())
    if env.is_main:
        checkpoint.save_checkpoint(checkpoint.checkpoint_dir(args.out, step), model_sd, optim_sd, step=step,
                                   seed=args.seed, config=config, scheduler=scheduler,
                                   extra={"rank_rng": rngs, "mode": args.mode, "world_size": env.world_size})
    if env.world_size > 1:
        dist.barrier()


def resume(model, optimizer, scheduler, args, config, env) -> int:
    """Load the latest checkpoint (if any) into the (possibly sharded) model; return its step."""
    path = checkpoint.latest_checkpoint(args.out)
    if path is None:
        return 0
    manifest = checkpoint.load_checkpoint(path, optimizer=True, config=config, scheduler=scheduler, restore_rng=False)
    if (manifest["extra"]["mode"] == "fsdp") != (args.mode == "fsdp"):
        raise checkpoint.CheckpointError(f"{path} was written by a {manifest['extra']['mode']} run; its optimizer "
                                         f"state does not load into --mode {args.mode}")
    load_full_state(model, optimizer, manifest["model"], manifest["optimizer_state"], args)
    rngs = manifest["extra"]["rank_rng"]
    checkpoint.set_rng_state(rngs[env.rank] if len(rngs) == env.world_size else manifest["rng"])
    return manifest["step"]


def run(args, env: distributed.DistEnv) -> dict:
    torch.manual_seed(args.seed)  # the same initial weights on every rank (FSDP shards each rank's copy)
    data = torch.frombuffer(bytearray(python_docs_text(args.corpus_chars).encode()), dtype=torch.uint8).long()
    config = GPTConfig(vocab_size=256, n_positions=args.seq_len, n_embd=args.n_embd, n_layer=args.n_layer,
                       n_head=args.n_head, dropout=args.dropout)
    model = GPT(config)
    if args.mode == "fsdp":
        model = distributed.wrap_fsdp(model, env, model.transformer.h)
    else:
        model = distributed.wrap_ddp(model, env)
    local = sum((p.to_local() if hasattr(p, "to_local") else p).numel() for p in model.parameters())  # FSDP: shards
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(args))
    start = resume(model, optimizer, scheduler, args, config, env) if args.resume else 0
    tracker = Tracker(args.log_dir or args.out / "tb", hparams=vars(args)) if env.is_main else None
    losses, t0 = [], time.perf_counter()
    model.train()
    for step in range(start, args.steps):
        batch = distributed.shard_batch(get_batch(data, step, args), env.rank, env.world_size).to(env.device)
        logits = model(batch[:, :-1]).logits  # (B/W, T, V)
        loss = F.cross_entropy(logits.flatten(0, 1), batch[:, 1:].flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # DDP all-reduces / FSDP reduce-scatters the gradients here
        if args.clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        optimizer.step()
        scheduler.step()
        global_loss = distributed.all_reduce_mean(loss.detach().clone()).item()
        losses.append(global_loss)
        if tracker:
            tokens = (step + 1 - start) * args.batch_size * args.seq_len
            tracker.log(step + 1, {"train/loss": global_loss, "train/lr": scheduler.get_last_lr()[0],
                                   "perf/tokens_per_s": tokens / (time.perf_counter() - t0)})
        if args.save_every and (step + 1) % args.save_every == 0 and step + 1 < args.steps:
            save(model, optimizer, scheduler, step + 1, args, config, env)
    save(model, optimizer, scheduler, args.steps, args, config, env)
    summary = {"mode": args.mode, "world_size": env.world_size, "backend": env.backend, "start": start,
               "params": sum(p.numel() for p in model.parameters()), "params_on_rank0": local,
               "steps": args.steps, "losses": losses, "seconds": round(time.perf_counter() - t0, 3)}
    if tracker:
        tracker.close()
        (args.out / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return summary


def main(argv=None) -> dict:
    args = parse_args(argv)
    env = distributed.init_process_group()
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        summary = run(args, env)
        if env.is_main:
            print(f"{args.mode} world_size={env.world_size} ({env.backend}) steps {summary['start']}→{args.steps} "
                  f"loss {summary['losses'][-1] if summary['losses'] else float('nan'):.4f}, "
                  f"rank 0 holds {summary['params_on_rank0']:,} of {summary['params']:,} parameters")
        return summary
    finally:
        distributed.destroy_process_group()


if __name__ == "__main__":
    main()
