"""Exercises of chapter 07 (word2vec and sentence embeddings): each one writes code the chapter has not shown."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from course_lib.exercises import exercise


def _cbow_problem():
    """A tiny CBOW batch: 7 words, dim 5, 3 centre words with 4 context words each, 1 true + 2 noise targets."""
    gen = torch.Generator().manual_seed(0)
    vectors, output = torch.randn(7, 5, generator=gen) * 0.5, torch.randn(7, 5, generator=gen) * 0.5
    context = torch.tensor([[1, 2, 4, 5], [0, 2, 3, 6], [1, 1, 3, 4]])       # (B, C); word 1 twice in row 2
    targets = torch.tensor([[3, 0, 6], [1, 4, 5], [2, 6, 0]])                # (B, 1 + K): centre, then noise
    return vectors, output, context, targets


def _cbow_reference(vectors, output, context, targets, lr):
    """One SGD step on the CBOW negative-sampling loss (summed over the batch), gradients from autograd."""
    v, u = vectors.clone().requires_grad_(), output.clone().requires_grad_()
    h = v[context].mean(1)                                                   # (B, d)
    s = torch.einsum("bkd,bd->bk", u[targets], h)                            # (B, 1 + K)
    loss = -(F.logsigmoid(s[:, 0]) + F.logsigmoid(-s[:, 1:]).sum(1)).sum()
    loss.backward()
    return (vectors - lr * v.grad), (output - lr * u.grad)


def _cbow_sum(vectors, output, context, targets, lr):       # wrong: h is the sum of the context vectors, not the mean
    v, u = vectors.clone().requires_grad_(), output.clone().requires_grad_()
    s = torch.einsum("bkd,bd->bk", u[targets], v[context].sum(1))
    (-(F.logsigmoid(s[:, 0]) + F.logsigmoid(-s[:, 1:]).sum(1)).sum()).backward()
    vectors -= lr * v.grad
    output -= lr * u.grad


def _cbow_full_error(vectors, output, context, targets, lr):   # wrong: the whole error to each context word
    # (word2vec.c's CBOW does this; the gradient of the mean, and gensim with cbow_mean=1, give each 1/C of it)
    h = vectors[context].mean(1)                                             # (B, d)
    u = output[targets]                                                      # (B, 1 + K, d)
    label = torch.zeros(targets.shape)
    label[:, 0] = 1
    g = (label - torch.sigmoid(torch.einsum("bkd,bd->bk", u, h))) * lr       # (B, 1 + K)
    err = torch.einsum("bk,bkd->bd", g, u)                                   # (B, d)
    vectors.index_add_(0, context.reshape(-1), err.repeat_interleave(context.shape[1], 0))
    output.index_add_(0, targets.reshape(-1), (g[:, :, None] * h[:, None, :]).reshape(-1, h.shape[1]))


@exercise("07.1", answer="cbow_step", wrong=(_cbow_sum, _cbow_full_error), writes_code=True)
def check_cbow_step(fn) -> str:
    """Check exercise 07.1: one in-place CBOW negative-sampling SGD step (Mikolov et al. 2013a §3.1; gensim
    ``Word2Vec(sg=0, cbow_mean=1)``) against autograd's gradient of the same loss on a tiny batch."""
    vectors, output, context, targets = _cbow_problem()
    want_v, want_u = _cbow_reference(vectors, output, context, targets, lr=0.5)
    got = fn(vectors, output, context, targets, 0.5)
    assert got is None, "原地更新 vectors 和 output（index_add_），返回 None"
    assert not torch.equal(vectors, _cbow_problem()[0]), "vectors 没有变化：要原地更新输入向量 (input vectors)"
    err_u = (output - want_u).abs().max().item()
    assert torch.allclose(output, want_u, atol=1e-5), f"输出向量 (output vectors) 和一步梯度下降的结果最多差 {err_u:.3g}"
    err_v = (vectors - want_v).abs().max().item()
    assert torch.allclose(vectors, want_v, atol=1e-5), (
        f"输出向量对了，上下文词的输入向量最多差 {err_v:.3g}："
        "h 是均值，每个上下文词该分到误差的多少？")
    return "h = 上下文向量的均值；每个上下文词分到 1/C 的误差，重复出现的词分到多份：和 autograd 一步 SGD 相同。"


def _hard_problem():
    """Unit queries, their positives and 2 hard negatives each (close to the query), batch 6, dim 16."""
    gen = torch.Generator().manual_seed(0)
    q = F.normalize(torch.randn(6, 16, generator=gen), dim=1)
    d = F.normalize(q + 0.6 * torch.randn(6, 16, generator=gen), dim=1)
    hard = F.normalize(q[:, None, :] + 0.5 * torch.randn(6, 2, 16, generator=gen), dim=2)   # (B, M, D)
    return q, d, hard


def _hard_reference(q, d, hard, temperature):
    """The loss written term by term: query i against all B positives and all B·M hard negatives."""
    candidates = torch.cat([d, hard.reshape(-1, d.shape[1])])               # (B + B·M, D)
    total = 0.0
    for i in range(len(q)):
        scores = [float(q[i] @ c) / temperature for c in candidates]
        total += -(scores[i] - float(np.log(np.sum(np.exp(scores)))))
    return total / len(q)


def _hard_ignored(q, d, hard, temperature=0.05):      # wrong: the hard negatives are dropped (plain in-batch InfoNCE)
    return F.cross_entropy(q @ d.T / temperature, torch.arange(len(q)))


def _hard_own_only(q, d, hard, temperature=0.05):     # wrong: only the query's own positive and hard negatives
    logits = torch.cat([(q * d).sum(1, keepdim=True), torch.einsum("bd,bmd->bm", q, hard)], 1) / temperature
    return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long))


@exercise("07.2", answer="info_nce_hard", wrong=(_hard_ignored, _hard_own_only), writes_code=True)
def check_info_nce_hard(fn) -> str:
    """Check exercise 07.2: InfoNCE with in-batch and hard negatives (sentence-transformers' MNRL on
    (anchor, positive, negative) triplets) against the loss written out term by term."""
    q, d, hard = _hard_problem()
    for t in (0.05, 0.5):
        got = fn(q, d, hard, t)
        assert torch.is_tensor(got) and got.dim() == 0, "返回一个标量 tensor：batch 的平均损失"
        want = _hard_reference(q.double(), d.double(), hard.double(), t)
        assert abs(got.item() - want) < 1e-4 * max(1.0, abs(want)), (
            f"温度 (temperature) {t}：应为 {want:.5f}，得到 {got.item():.5f}")
    return "每个查询对 B 个正样本 + B·M 个难负样本做 softmax：难负样本越像查询，损失越大。"


def _cosmul_no_shift(words, vectors, a, b, c, topn=5):   # wrong: raw cosines, which can be negative
    unit = F.normalize(torch.as_tensor(vectors, dtype=torch.float64), dim=1)
    idx = {w: i for i, w in enumerate(words)}
    cos = [unit @ unit[idx[w]] for w in (a, b, c)]
    score = cos[1] * cos[2] / (cos[0] + 1e-6)
    score[[idx[a], idx[b], idx[c]]] = -float("inf")
    return [words[i] for i in score.topk(topn).indices]


def _cosadd(words, vectors, a, b, c, topn=5):            # wrong: 3CosAdd (b − a + c), the chapter's analogy rule
    unit = F.normalize(torch.as_tensor(vectors, dtype=torch.float64), dim=1)
    idx = {w: i for i, w in enumerate(words)}
    score = unit @ F.normalize(unit[idx[b]] - unit[idx[a]] + unit[idx[c]], dim=0)
    score[[idx[a], idx[b], idx[c]]] = -float("inf")
    return [words[i] for i in score.topk(topn).indices]


@exercise("07.3", answer="analogy_cosmul", wrong=(_cosmul_no_shift, _cosadd), writes_code=True)
def check_analogy_cosmul(fn) -> str:
    """Check exercise 07.3: 3CosMul analogies (Levy & Goldberg 2014, "Linguistic Regularities in Sparse and
    Explicit Word Representations" §4) against gensim's ``KeyedVectors.most_similar_cosmul``."""
    from gensim.models import KeyedVectors

    gen = np.random.default_rng(0)
    words = [f"w{i}" for i in range(60)]
    vectors = gen.standard_normal((60, 8)).astype(np.float32)
    kv = KeyedVectors(8)
    kv.add_vectors(words, vectors)
    for a, b, c in [("w0", "w1", "w2"), ("w3", "w4", "w5"), ("w10", "w20", "w30"), ("w7", "w8", "w9")]:
        got = list(fn(words, vectors, a, b, c, topn=5))
        want = [w for w, _ in kv.most_similar_cosmul(positive=[b, c], negative=[a], topn=5)]
        assert got == want, f"{a} : {b} = {c} : ？ 应为 {want}，得到 {got}"
    return "3CosMul 把三项相似度相乘相除（先平移到 [0, 1]），和 gensim 的 most_similar_cosmul 一致。"
