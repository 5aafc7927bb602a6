"""Exercises of chapter 07 (word2vec and sentence embeddings)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from course_lib.embedding import word2vec
from course_lib.embedding.contrastive import info_nce
from course_lib.exercises import exercise


def _keep_paper(counts, sample):        # wrong: the paper's discard rule 1 − sqrt(t/f) used as the keep rate
    f = counts / counts.sum()
    return np.clip(1 - np.sqrt(sample / f), 0, 1)


def _keep_uncapped(counts, sample):     # wrong: word2vec.c's formula without the cap at 1
    t = sample * counts.sum()
    return (np.sqrt(counts / t) + 1) * t / counts


@exercise("07.1", answer="keep_probability", wrong=(_keep_paper, _keep_uncapped), writes_code=True)
def check_keep_probability(fn) -> str:
    """Check exercise 07.1: the learner's subsampling keep probability against ``word2vec.keep_probability`` (word2vec.c)."""
    counts = np.array([5000, 1200, 300, 40, 7, 2], np.int64)
    got = np.asarray(fn(counts, 1e-2), dtype=np.float64)
    assert got.shape == counts.shape, f"expected one probability per word, shape {counts.shape}, got {got.shape}"
    assert (got <= 1 + 1e-12).all(), "a probability above 1: cap the keep rate at 1"
    want = word2vec.keep_probability(counts, 1e-2)
    assert np.allclose(got, want, atol=1e-9), f"expected {np.round(want, 4)}, got {np.round(got, 4)}"
    return "高频词被大量丢弃、罕见词全部保留：word2vec.c 与 gensim 的子采样公式。"


def _sgns_neg_plus(v, u_pos, u_neg):    # wrong: the negatives pushed the wrong way (σ(+u_k·v))
    return -(F.logsigmoid((u_pos * v).sum(-1)) + F.logsigmoid(torch.einsum("bkd,bd->bk", u_neg, v)).sum(-1)).mean()


def _sgns_no_neg(v, u_pos, u_neg):      # wrong: only the positive pair
    return -F.logsigmoid((u_pos * v).sum(-1)).mean()


@exercise("07.2", answer="sgns_loss", wrong=(_sgns_neg_plus, _sgns_no_neg), writes_code=True)
def check_sgns_loss(fn) -> str:
    """Check exercise 07.2: the learner's skip-gram negative-sampling loss (Mikolov et al. 2013 §2.2) against the formula."""
    gen = torch.Generator().manual_seed(0)
    v, u_pos, u_neg = torch.randn(6, 8, generator=gen), torch.randn(6, 8, generator=gen), torch.randn(6, 5, 8, generator=gen)
    got = fn(v, u_pos, u_neg)
    assert torch.is_tensor(got) and got.dim() == 0, "return one scalar tensor: the mean loss over the batch"
    want = -(F.logsigmoid((u_pos * v).sum(-1)) + F.logsigmoid(-torch.einsum("bkd,bd->bk", u_neg, v)).sum(-1)).mean()
    assert torch.allclose(got, want, atol=1e-5), f"expected {want.item():.5f}, got {got.item():.5f}"
    return "正样本拉近 σ(u_o·v)，K 个噪声词推远 σ(−u_k·v)：这就是负采样的目标函数。"


def _nce_no_temperature(q, d, temperature=0.05):   # wrong: the temperature forgotten
    return F.cross_entropy(q @ d.T, torch.arange(len(q)))


def _nce_diag_only(q, d, temperature=0.05):        # wrong: no in-batch negatives, just pull positives together
    return -((q * d).sum(-1) / temperature).mean()


@exercise("07.3", answer="in_batch_info_nce", wrong=(_nce_no_temperature, _nce_diag_only), writes_code=True)
def check_info_nce(fn) -> str:
    """Check exercise 07.3: the learner's in-batch InfoNCE loss against ``info_nce``."""
    gen = torch.Generator().manual_seed(0)
    q = F.normalize(torch.randn(8, 16, generator=gen), dim=1)
    d = F.normalize(q + 0.5 * torch.randn(8, 16, generator=gen), dim=1)
    for t in (0.05, 0.5):
        got = fn(q, d, t)
        assert torch.is_tensor(got) and got.dim() == 0, "return one scalar tensor"
        want = info_nce(q, d, t)
        assert torch.allclose(got, want, atol=1e-5), f"temperature {t}: expected {want.item():.5f}, got {got.item():.5f}"
    return "同一批里其他文档都是负样本：B×B 相似度矩阵 / τ，对角线是正确答案的交叉熵。"
