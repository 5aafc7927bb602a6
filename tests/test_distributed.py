"""DDP and FSDP on 2 gloo processes = one process on the full batch; expert parallelism = one MoE layer.

The 2-process runs go through ``torchrun`` on loopback (``course_lib.distributed.torchrun``: a free
port, its own session, killed whole on timeout) of ``scripts/train_ddp.py`` and
``scripts/expert_parallel_moe.py``; the references run in this process.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from course_lib import distributed
from course_lib.models.deepseek.moe import DeepSeekMoE, MoEConfig

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "train_ddp.py"
EP_SCRIPT = ROOT / "scripts" / "expert_parallel_moe.py"
STEPS = 6
ARGS = ["--steps", str(STEPS), "--batch-size", "8", "--seq-len", "32", "--corpus-chars", "50000"]
MOE = dict(hidden_size=16, moe_intermediate_size=8, n_routed_experts=8, num_experts_per_tok=2)


def load_script():
    spec = importlib.util.spec_from_file_location("train_ddp", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def single_run(tmp_path_factory):
    """The reference: the same script in this process (no torchrun: world size 1), full batch every step."""
    out = tmp_path_factory.mktemp("single")
    summary = load_script().main([*ARGS, "--out", str(out), "--save-every", str(STEPS - 1)])
    return out, summary


def max_param_diff(a: Path, b: Path) -> float:
    sa, sb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert sa.keys() == sb.keys()
    return max((sa[k] - sb[k]).abs().max().item() for k in sa)


# Tolerance 2e-5 on parameters after 6 AdamW steps at lr 3e-3. The gradients agree to fp32
# rounding only (each rank averages its 4 sequences, then the ranks' means are averaged, where one
# process averages all 8 at once: another summation order), and AdamW's m/√v normalises each
# update, so a gradient component near zero can turn a rounding difference into a visible part of
# lr. Measured: 1.6e-6 (DDP) and 3.2e-6 (FSDP). 2e-5 is 150× below one step's size (lr), so no step
# may differ; the control below shows that one step less misses by far more than the tolerance.
TOL = 2e-5


@pytest.mark.parametrize("mode", ["ddp", "fsdp"])
def test_two_processes_match_one_process(mode, single_run, tmp_path):
    single, summary = single_run
    out = tmp_path / mode
    result = distributed.torchrun(SCRIPT, [*ARGS, "--mode", mode, "--out", out, "--save-every", STEPS - 1], nproc=2,
                                  timeout=240)
    assert f"{mode} world_size=2 (gloo)" in result.stdout
    final = f"step_{STEPS:06d}"
    diff = max_param_diff(single / final, out / final)
    assert diff < TOL, f"{mode}: parameters differ by {diff:.2e} from the one-process run"
    assert max_param_diff(single / f"step_{STEPS - 1:06d}", out / final) > 100 * TOL  # the check can fail
    losses = json.loads((out / "summary.json").read_text())["losses"]
    torch.testing.assert_close(torch.tensor(losses), torch.tensor(summary["losses"]), rtol=1e-5, atol=1e-6)

    # resume the 2-process run from step 5 (each rank gets back its own RNG state): bit-identical
    resumed = tmp_path / "resumed"
    shutil.copytree(out / f"step_{STEPS - 1:06d}", resumed / f"step_{STEPS - 1:06d}")
    distributed.torchrun(SCRIPT, [*ARGS, "--mode", mode, "--out", resumed, "--resume"], nproc=2, timeout=240)
    assert max_param_diff(out / final, resumed / final) == 0.0


def test_expert_parallel_moe_matches_single_process_forward_and_backward(tmp_path):
    distributed.torchrun(EP_SCRIPT, ["--out", tmp_path], nproc=2, timeout=180)
    inputs = torch.load(tmp_path / "inputs.pt")
    moe = DeepSeekMoE(MoEConfig(**inputs["config"]))
    moe.load_state_dict(inputs["state_dict"])
    x = inputs["x"].clone().requires_grad_()
    out = moe(x)
    (out * inputs["w"]).sum().backward()
    experts = moe.last_routing.indices.view(*x.shape[:2], -1)  # (B, T, K)
    for r in range(2):  # tokens of each rank reach experts on both ranks: the all-to-all really exchanges
        assert set((experts[2 * r:2 * r + 2] // 4).unique().tolist()) == {0, 1}

    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    # fp32, default assert_close tolerances (rtol 1.3e-6, atol 1e-5): the same arithmetic, but expert
    # weight gradients sum the tokens of both ranks in another order than one process does
    torch.testing.assert_close(torch.cat([r["out"] for r in ranks]), out.detach())
    torch.testing.assert_close(torch.cat([r["x_grad"] for r in ranks]), x.grad)
    reference = {n: p.grad for n, p in moe.named_parameters()}
    seen = set()
    for r in ranks:
        for name, grad in r["grads"].items():
            torch.testing.assert_close(grad, reference[name], msg=lambda m, n=name: f"{n}: {m}")
            seen.add(name)
    assert seen == set(reference)  # every parameter's gradient checked, each expert on its own rank


def test_single_process_environment(monkeypatch):
    for name in distributed.TORCHRUN_VARS:
        monkeypatch.delenv(name, raising=False)
    env = distributed.init_process_group("gloo")
    assert (env.rank, env.world_size, env.device.type, env.is_main) == (0, 1, "cpu", True)
    assert distributed.world() == (0, 1)
    t = torch.tensor([3.0])
    assert distributed.all_reduce_mean(t).item() == 3.0  # nothing to average with


def test_shard_batch_slices_evenly():
    batch = torch.arange(12).view(6, 2)
    parts = [distributed.shard_batch(batch, r, 3) for r in range(3)]
    assert torch.equal(torch.cat(parts), batch)
    with pytest.raises(ValueError, match="divisible by world_size=4"):
        distributed.shard_batch(batch, 0, 4)
    with pytest.raises(ValueError, match="rank must be in"):
        distributed.shard_batch(batch, 3, 3)
    with pytest.raises(TypeError, match="batch must be a tensor"):
        distributed.shard_batch([1, 2], 0, 1)


def test_bad_arguments():
    with pytest.raises(ValueError, match="backend must be"):
        distributed.init_process_group("mpi")
    moe = DeepSeekMoE(MoEConfig(**MOE))
    with pytest.raises(ValueError, match="divisible by world_size=3"):
        distributed.ExpertParallelMoE(moe, 0, 3)
    with pytest.raises(TypeError, match="moe must be a DeepSeekMoE"):
        distributed.ExpertParallelMoE(torch.nn.Linear(2, 2), 0, 2)


def test_torchrun_failure_is_reported(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import sys; sys.exit(3)\n")
    with pytest.raises(RuntimeError, match="torchrun exited"):
        distributed.torchrun(bad, nproc=1, timeout=120)

