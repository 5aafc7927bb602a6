"""Exercise checks for chapter 02a (BERT, T5 and GPT)."""

from __future__ import annotations

import torch

from course_lib.attention import causal_mask
from course_lib.exercises import exercise

# 02a.2: the toy vocabulary the exercise cell shows (the order gives the ids)
TOY_VOCAB = ["[UNK]", "un", "unhappy", "happy", "##happi", "##happy", "##ness", "##h", "##app", "##i", "##ne", "##ss"]


@exercise("02a.1", answer="decoder_only_mask",
          wrong=(lambda T: torch.ones(T, T, dtype=torch.bool).triu(),     # sees the future instead of the past
                 lambda T: torch.ones(T, T, dtype=torch.bool).tril(-1)),  # a token may not see itself
          writes_code=True)
def check_decoder_only_mask(decoder_only_mask) -> str:
    """Check exercise 02a.1: the learner's decoder-only mask against ``causal_mask``."""
    for T in (1, 5, 17):
        got = decoder_only_mask(T)
        assert isinstance(got, torch.Tensor) and got.dtype == torch.bool and got.shape == (T, T), \
            f"decoder_only_mask({T}) 应是形状 ({T}, {T}) 的布尔张量 (bool tensor)，得到 {getattr(got, 'dtype', type(got))} " \
            f"{tuple(getattr(got, 'shape', ()))}"
        wrong = (got != causal_mask(T)).nonzero().tolist()
        assert not wrong, (f"T = {T}：位置 (查询 i, 键 j) = {tuple(wrong[0])} 是 {bool(got[tuple(wrong[0])])}；"
                           "查询 i 恰好在 j ≤ i 时能看到键 j（包括它自己）")
    return "查询 i 看到所有 j ≤ i 的键 (T = 1, 5, 17)"


def _greedy_longest_match(word: str, vocab: set[str]) -> list[str]:
    pieces, start = [], 0
    while start < len(word):
        for end in range(len(word), start, -1):
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                break
        else:
            return ["[UNK]"]
        pieces.append(piece)
        start = end
    return pieces


@exercise("02a.2", answer="answer",
          wrong=(["un", "##h", "##app", "##i", "##ne", "##ss"],   # shortest match first
                 ["un", "happi", "ness"],                          # continuation pieces without ##
                 ["[UNK]"]))
def check_wordpiece_by_hand(answer) -> str:
    """Check exercise 02a.2: the learner's hand WordPiece split of "unhappiness" against greedy longest-match."""
    expected = _greedy_longest_match("unhappiness", set(TOY_VOCAB))
    assert isinstance(answer, list) and all(isinstance(p, str) for p in answer), \
        f"answer 应是字符串列表（切出的片段 pieces），得到 {answer!r}"
    assert answer == expected, (f"{answer} 不是贪心最长匹配 (greedy longest-match) 的结果：每一步取词表里最长的片段，"
                                "第一个之后的片段以 ## 开头")
    return f"unhappiness -> {expected}"


def _bert_params_no_pooler(V, P, S, d, d_ff, L):
    """Wrong: forgets the pooler (dense d × d + bias on [CLS])."""
    layer = 4 * (d * d + d) + (d * d_ff + d_ff) + (d_ff * d + d) + 2 * 2 * d
    return (V + P + S) * d + 2 * d + L * layer


def _bert_params_no_attention_bias(V, P, S, d, d_ff, L):
    """Wrong: the four attention projections counted without their biases."""
    layer = 4 * d * d + (d * d_ff + d_ff) + (d_ff * d + d) + 2 * 2 * d
    return (V + P + S) * d + 2 * d + L * layer + d * d + d


@exercise("02a.3", answer="bert_params", wrong=(_bert_params_no_pooler, _bert_params_no_attention_bias),
          writes_code=True)
def check_bert_params(bert_params) -> str:
    """Check exercise 02a.3: the learner's BERT parameter formula against course_lib's ``BertModel``."""
    from course_lib.models.bert import BertConfig, BertModel

    counts = []
    for V, P, S, d, d_ff, L, heads in ((100, 16, 2, 32, 64, 2, 4), (57, 8, 3, 16, 48, 3, 2)):
        model = BertModel(BertConfig(vocab_size=V, max_position_embeddings=P, type_vocab_size=S, hidden_size=d,
                                     intermediate_size=d_ff, num_hidden_layers=L, num_attention_heads=heads))
        expected = sum(p.numel() for p in model.parameters())
        got = bert_params(V, P, S, d, d_ff, L)
        assert got == expected, (f"bert_params{(V, P, S, d, d_ff, L)} = {got}，但 course_lib 的 BertModel 有 "
                                 f"{expected:,} 个参数（差 {expected - got:+,}）：每个偏置 (bias)、LayerNorm 的两个向量"
                                 "和池化层 (pooler) 都要数")
        counts.append(expected)
    return f"两种配置都与 BertModel 相同（{counts[0]:,} 和 {counts[1]:,} 个参数）"


@exercise("02a.4", answer="answer_bucket", wrong=(12, 23))
def check_bucket(answer_bucket) -> str:
    """Check exercise 02a.4: the learner's T5 relative-position bucket for +40 against ``relative_position_bucket``."""
    from course_lib.models.t5 import relative_position_bucket

    expected = int(relative_position_bucket(torch.tensor(40), bidirectional=True, num_buckets=32, max_distance=128))
    assert isinstance(answer_bucket, int), f"answer_bucket 应是整数 (int)，得到 {answer_bucket!r}"
    assert answer_bucket == expected, (f"bucket(+40) 不是 {answer_bucket}：j > i 用后一半（偏移 16），"
                                       "前 8 个桶是精确距离，其余 8 个桶在 8 到 128 之间按对数划分")
    return f"bucket(+40) = {expected}"


def _cross_attention(x, memory, memory_mask, w, n_heads, scale=1.0, use_mask=True, kv_from_memory=True):
    """T5 cross-attention sublayer ``x + o(attention(RMSNorm(x) → q, memory → k, v))``; the flags make wrong answers."""
    B, T, _ = x.shape
    h = w["layer_norm"] * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)   # RMSNorm, scale only
    source = memory if kv_from_memory else h
    S = source.shape[1]
    q = (h @ w["q"].T).view(B, T, n_heads, -1).transpose(1, 2)        # (B, H, T, d_kv)
    k = (source @ w["k"].T).view(B, S, n_heads, -1).transpose(1, 2)   # (B, H, S, d_kv)
    v = (source @ w["v"].T).view(B, S, n_heads, -1).transpose(1, 2)   # (B, H, S, d_kv)
    scores = q @ k.transpose(-1, -2) * scale                          # (B, H, T, S)
    if use_mask and kv_from_memory:
        scores = scores.masked_fill(~memory_mask.bool()[:, None, None, :], float("-inf"))
    out = (scores.softmax(-1) @ v).transpose(1, 2).reshape(B, T, -1)  # (B, T, H·d_kv)
    return x + out @ w["o"].T


@exercise("02a.5", answer="t5_cross_attention",
          wrong=(lambda x, m, mm, w, n: _cross_attention(x, m, mm, w, n, scale=(w["q"].shape[0] // n) ** -0.5),
                 lambda x, m, mm, w, n: _cross_attention(x, m, mm, w, n, use_mask=False),
                 lambda x, m, mm, w, n: _cross_attention(x, m, mm, w, n, kv_from_memory=False)),
          writes_code=True)
def check_t5_cross_attention(t5_cross_attention) -> str:
    """Check exercise 02a.5: the learner's T5 cross-attention sublayer against course_lib's ``T5LayerCrossAttention``."""
    from course_lib.models.t5 import T5Config, T5LayerCrossAttention

    torch.manual_seed(0)
    config = T5Config(vocab_size=10, d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=4)
    layer = T5LayerCrossAttention(config).eval()
    for p in layer.parameters():
        torch.nn.init.normal_(p, std=0.3)
    w = {"layer_norm": layer.layer_norm.weight.detach(),
         **{n: getattr(layer.EncDecAttention, n).weight.detach() for n in "qkvo"}}
    x, memory = torch.randn(2, 5, 32), torch.randn(2, 7, 32)            # decoder states, encoder output
    memory_mask = torch.ones(2, 7, dtype=torch.long)
    memory_mask[1, 4:] = 0                                              # the second source sentence is padded
    bias = torch.zeros(2, 1, 1, 7).masked_fill(~memory_mask.bool()[:, None, None, :], float("-inf"))
    with torch.no_grad():
        expected = layer(x, memory, bias, False)[0]
    got = t5_cross_attention(x, memory, memory_mask, w, config.num_heads)
    assert isinstance(got, torch.Tensor) and got.shape == expected.shape, \
        f"输出应是形状 {tuple(expected.shape)} 的张量（与解码器输入 x 相同），得到 {tuple(getattr(got, 'shape', ()))}"
    err = (got - expected).abs().max().item()
    assert torch.allclose(got, expected, atol=1e-5, rtol=1e-4), (
        f"与 course_lib 的 T5LayerCrossAttention 最大相差 {err:.3g}：想想查询 (query) 和键/值 (key/value) 各来自哪里、"
        "被填充 (padding) 的源词元是否被屏蔽、T5 的注意力分数是否缩放，以及残差 (residual) 加在哪里")
    return "与 course_lib 的 T5LayerCrossAttention 逐元素一致（含源句填充掩码）"
