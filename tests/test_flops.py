"""FLOP accounting of ``training.train`` against a hand count on a tiny GPT.

Hand count (Kaplan et al. 2020 §2.1, PaLM App. B): per token 6·N + 12·L·d·T, with N the matmul
weights: per block q/k/v (3d²), output projection (d²), MLP (4d² + 4d²), and the tied head (V·d).
The counter sees every matmul, so the two must agree exactly (integers, no tolerance).
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from course_lib.models.gpt import GPT, GPTConfig
from course_lib.training import count_tokens, train, transformer_train_flops_per_token

pytestmark = pytest.mark.usefixtures("one_thread")


def test_counted_flops_per_token_equal_the_hand_count(tmp_path, monkeypatch):
    L, d, V, T, B = 2, 32, 101, 16, 2
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=V, n_positions=T, n_embd=d, n_layer=L, n_head=4, dropout=0.0))
    ids = torch.randint(0, V, (B, T + 1))

    def loss_fn(m, batch):
        x, y = batch
        return F.cross_entropy(m(x).logits.flatten(0, 1), y.flatten())

    monkeypatch.setenv("COURSE_RESULTS", str(tmp_path / "runs.jsonl"))
    history = train(model, lambda step: (ids[:, :-1], ids[:, 1:]), loss_fn,
                    torch.optim.SGD(model.parameters(), lr=0.01), steps=3, desc="tiny gpt")
    n_matmul = L * (3 * d * d + d * d + 4 * d * d + 4 * d * d) + V * d
    assert history.flops_per_item == transformer_train_flops_per_token(n_matmul, L, d, T)
    assert history.flops_per_item == 6 * n_matmul + 12 * L * d * T
    assert history.items == 3 * B * T  # the first integer tensor of each batch: the input ids
    row = json.loads((tmp_path / "runs.jsonl").read_text().splitlines()[-1])
    assert row["items"] == 3 * B * T and row["flops_per_item"] == history.flops_per_item
    assert row["items_per_second"] > 0
    assert history.mfu(1e12) == pytest.approx(history.flops_per_item * history.items_per_second / 1e12)


def test_count_tokens_defaults():
    ids, labels = torch.zeros(4, 9, dtype=torch.long), torch.zeros(4, dtype=torch.long)
    assert count_tokens((ids, ids)) == 36
    assert count_tokens({"pixels": torch.zeros(4, 3, 8, 8), "labels": labels}) == 4  # images: one item each
    assert count_tokens(torch.zeros(5, 3)) == 5
