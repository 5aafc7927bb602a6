"""Exercises of chapter 09 (retrieval-augmented generation)."""

from __future__ import annotations

import numpy as np

from course_lib.exercises import exercise
from course_lib.rag.bm25 import BM25


def _bm25_no_length_norm(tf, doc_len, avgdl, idf, k1=1.5, b=0.75):   # wrong: forgets b · |d| / avgdl
    tf = np.asarray(tf, float)
    return idf * tf * (k1 + 1) / (tf + k1)


def _bm25_raw_tf(tf, doc_len, avgdl, idf, k1=1.5, b=0.75):            # wrong: no saturation at all
    return idf * np.asarray(tf, float)


@exercise("09.1", answer="bm25_term", wrong=(_bm25_no_length_norm, _bm25_raw_tf), writes_code=True)
def check_bm25_term(fn) -> str:
    """Check exercise 09.1: the learner's BM25 term score (Robertson & Zaragoza 2009) against course_lib's ``BM25``."""
    docs = [["json", "dumps", "json"], ["json"], ["os", "path", "join", "path", "json", "a", "b", "c"], ["time"]]
    ref = BM25(docs, k1=1.2, b=0.6)
    t = ref.vocab["json"]
    tf = np.array([2.0, 1.0, 1.0, 0.0])
    got = np.asarray(fn(tf, ref.doc_len, ref.avgdl, ref.idf[t], k1=1.2, b=0.6), float)
    assert got.shape == (4,), f"expected one score per document, shape (4,), got {got.shape}"
    assert np.allclose(got, ref.scores(["json"]), atol=1e-9), \
        "each document: idf · tf · (k1 + 1) / (tf + k1 · (1 − b + b · |d| / avgdl))"
    return "长文档里同样的词频得分更低（b），词频越多收益越小（k1）。"


def _mmr(query_sim, doc_sim, k, lam=0.7):
    """Reference MMR (Carbonell & Goldstein 1998, eq. 1): greedy, ties to the lower index."""
    selected, left = [], list(range(len(query_sim)))
    while left and len(selected) < k:
        def gain(i):
            return lam * query_sim[i] - (1 - lam) * max((doc_sim[i][j] for j in selected), default=0.0)
        best = max(left, key=lambda i: (gain(i), -i))
        selected.append(best)
        left.remove(best)
    return selected


def _mmr_relevance_only(query_sim, doc_sim, k, lam=0.7):     # wrong: plain top-k, no redundancy penalty
    return [int(i) for i in np.argsort(-np.asarray(query_sim), kind="stable")[:k]]


def _mmr_mean_redundancy(query_sim, doc_sim, k, lam=0.7):    # wrong: mean similarity to the chosen, not the max
    selected, left = [], list(range(len(query_sim)))
    while left and len(selected) < k:
        def gain(i):
            return lam * query_sim[i] - (1 - lam) * (np.mean([doc_sim[i][j] for j in selected]) if selected else 0.0)
        best = max(left, key=lambda i: (gain(i), -i))
        selected.append(best)
        left.remove(best)
    return selected


@exercise("09.2", answer="mmr", wrong=(_mmr_relevance_only, _mmr_mean_redundancy), writes_code=True)
def check_mmr(fn) -> str:
    """Check exercise 09.2: the learner's maximal marginal relevance selection against the reference greedy MMR."""
    rng = np.random.default_rng(0)
    q = [0.9, 0.88, 0.5, 0.3]                   # passages 0 and 1 are near-duplicates of each other
    d = [[1.0, 0.95, 0.1, 0.2], [0.95, 1.0, 0.15, 0.1], [0.1, 0.15, 1.0, 0.3], [0.2, 0.1, 0.3, 1.0]]
    cases = [(q, d, 2, 0.6), (q, d, 3, 0.5), (q, d, 4, 1.0), (q, d, 1, 0.0)]
    for _ in range(5):
        v = rng.normal(size=(7, 4))
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        sims = (v @ v.T).tolist()
        cases.append((sims[0][1:], [row[1:] for row in sims[1:]], 3, 0.6))
    for qs, ds, k, lam in cases:
        got, want = [int(i) for i in fn(qs, ds, k, lam)], _mmr(qs, ds, k, lam)
        assert got == want, (f"k={k}, λ={lam}: got {got}, expected {want} — each step picks the passage maximising "
                             "λ·sim(q, d) − (1 − λ)·max over already chosen d' of sim(d, d')")
    return "近乎重复的第二段被换成了说别的事的段落：给生成器的 k 个来源覆盖面更广。"


@exercise("09.3", answer="answer", wrong=(1 / 3, 1.0, 0.25))
def check_doc_level_rr(answer) -> str:
    """Check exercise 09.3: the learner's document-level reciprocal rank against the worked value 1/2."""
    assert isinstance(answer, (int, float)), f"answer should be a number, got {answer!r}"
    assert abs(answer - 0.5) < 1e-9, ("the chunks json.dumps#0 and json.dumps#1 are one document: the document "
                                      "ranking is [json.dumps, json.loads], so the relevant one is at rank 2")
    return "文档级排名：json.loads 排第 2，倒数排名 = 1/2。"
