"""Slot KV cache (continuous batching): rows at different lengths, joining and leaving, decode as if alone."""

from __future__ import annotations

import pytest
import torch

from course_lib.generation import generate
from course_lib.models.llama import LlamaConfig, LlamaForCausalLM
from course_lib.serving.slots import SlotKVCache


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=97, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=64)
    model = LlamaForCausalLM(config).eval()
    for p in model.parameters():  # larger weights: sharper logits, argmax not decided by rounding
        p.data.mul_(4.0)
    return model


def _alone(model, prompt, n):
    return generate(model, torch.tensor([prompt]), n)[0, len(prompt):].tolist()


def test_staggered_joins_and_leaves_equal_each_sequence_alone(tiny):
    """Three prompts of 3, 7, 5 tokens join at steps 0, 2, 4; the first leaves early and its slot is reused."""
    prompts = [[5, 17, 3], [9, 1, 44, 12, 8, 70, 2], [60, 61, 62, 63, 64]]
    wanted = [4, 9, 8]
    join_at = [0, 2, 4]
    cache = SlotKVCache.for_model(tiny, slots=2, max_len=32)
    rows: list[dict] = []  # busy slots 0..n-1, in order
    out: dict[int, list[int]] = {i: [] for i in range(3)}
    waiting = list(range(3))
    with torch.no_grad():
        for step in range(40):
            while waiting and join_at[waiting[0]] <= step and len(rows) < cache.slots:
                i = waiting.pop(0)
                logits = cache.prefill(tiny, [len(rows)], [prompts[i]])
                out[i].append(int(logits.argmax(-1)))
                rows.append({"req": i})
            if not rows:
                continue
            last = torch.tensor([[out[r["req"]][-1]] for r in rows])  # (n, 1)
            logits = cache.decode(tiny, last)  # (n, V)
            for b, r in enumerate(rows):
                if len(out[r["req"]]) < wanted[r["req"]]:
                    out[r["req"]].append(int(logits[b].argmax()))
            for b in reversed(range(len(rows))):  # leave, the last busy slot fills the hole
                if len(out[rows[b]["req"]]) >= wanted[rows[b]["req"]]:
                    if b != len(rows) - 1:
                        cache.move(len(rows) - 1, b)
                        rows[b] = rows[-1]
                    else:
                        cache.free(b)
                    rows.pop()
            if not rows and not waiting:
                break
    for i, prompt in enumerate(prompts):
        assert out[i] == _alone(tiny, prompt, wanted[i]), f"request {i}"
    assert cache.lengths.tolist() == [0, 0]


def test_decode_logits_match_plain_cache(tiny):
    """Two rows at lengths 3 and 6 give the logits each gets from the plain KVCache (fp32 tolerance)."""
    a, b = [1, 2, 3], [4, 5, 6, 7, 8, 9]
    cache = SlotKVCache.for_model(tiny, slots=3, max_len=16)
    with torch.no_grad():
        first = cache.prefill(tiny, [0, 1], [a, b])  # one left-padded forward for both
        for row, prompt in enumerate([a, b]):
            torch.testing.assert_close(first[row], tiny(torch.tensor([prompt])).logits[0, -1], rtol=1e-5, atol=1e-5)
        got = cache.decode(tiny, torch.tensor([[10], [11]]))
        for row, (prompt, nxt) in enumerate([(a, 10), (b, 11)]):
            want = tiny(torch.tensor([prompt + [nxt]])).logits[0, -1]
            torch.testing.assert_close(got[row], want, rtol=1e-5, atol=1e-5)
    assert cache.lengths.tolist() == [4, 7, 0]


def test_bad_slot_arguments(tiny):
    with pytest.raises(ValueError, match="slots must be an int >= 1"):
        SlotKVCache.for_model(tiny, slots=0, max_len=8)
    with pytest.raises(ValueError, match="exceeds the context window"):
        SlotKVCache.for_model(tiny, slots=1, max_len=1000)
    cache = SlotKVCache.for_model(tiny, slots=1, max_len=4)
    with pytest.raises(ValueError, match="1..3 tokens"):
        cache.prefill(tiny, [0], [[1, 2, 3, 4]])
    with pytest.raises(ValueError, match="distinct ints in"):
        cache.prefill(tiny, [0, 0], [[1], [2]])
    with pytest.raises(ValueError, match="key_mask a bool"):
        tiny.decode_rows(torch.tensor([[1]]), cache, torch.tensor([[0]]), torch.ones(1, 1, 1, 1))
