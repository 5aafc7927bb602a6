"""Shared fixtures. Expensive references (transformers loading the GGUF, ~30 s) load once per session."""

from __future__ import annotations

import os

import pytest
import torch


def pytest_configure(config):
    """Under pytest-xdist, give each worker (and the notebook kernels it starts) one BLAS/OpenMP thread.

    Two workers with two threads each on a 2-core machine oversubscribe it, and spinning OpenMP
    threads then make torch 10-30x slower (docs/NOTES.md). Runs in the controller before the workers
    start, so they inherit the environment; an explicit setting by the user wins.
    """
    if getattr(config.option, "numprocesses", None):
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(name, "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def one_thread():
    """Run a module on one torch thread (tiny models: thread overhead dominates; restores the setting)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def smollm2_state_dict():
    """Our dequantized SmolLM2 weights (HF names, fp32)."""
    from course_lib import weights

    return weights.smollm2_state_dict()


@pytest.fixture(scope="session")
def hf_smollm2():
    """transformers' ``LlamaForCausalLM`` loaded from the same GGUF file (the reference), fp32, eval mode."""
    from transformers import AutoModelForCausalLM

    from course_lib import weights

    path = weights.smollm2_gguf_path()
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    return model.eval()


@pytest.fixture(scope="session")
def hf_smollm2_tokenizer():
    """transformers' tokenizer built from the same GGUF's metadata (the reference for our BPE)."""
    from transformers import AutoTokenizer

    from course_lib import weights

    path = weights.smollm2_gguf_path()
    return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


@pytest.fixture(scope="session")
def smollm2():
    """Our LlamaForCausalLM with the SmolLM2 weights (eval mode), shared by the LLaMA and generation tests."""
    from course_lib import pretrained

    return pretrained.smollm2()


@pytest.fixture(scope="session")
def smollm2_bpe():
    """Our byte-level BPE tokenizer with SmolLM2's vocabulary and merges."""
    from course_lib import pretrained

    return pretrained.smollm2_tokenizer()


@pytest.fixture(scope="session")
def tiny_llama():
    """A tiny random LLaMA with SmolLM2's vocabulary (49152), for serving tests that need speed, not sense."""
    from course_lib.models.llama import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=49152, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=256)
    model = LlamaForCausalLM(config).eval()
    for p in model.parameters():  # sharper logits: the argmax is not decided by rounding
        p.data.mul_(4.0)
    return model


@pytest.fixture(scope="module")
def served(smollm2, smollm2_bpe):
    """SmolLM2 behind the OpenAI-compatible server on loopback (4 slots, 512 tokens): ``(server, engine)``."""
    from course_lib.serving import Engine, serve_in_background

    engine = Engine(smollm2, smollm2_bpe, slots=4, max_len=512)
    with serve_in_background(engine) as server:
        yield server, engine
