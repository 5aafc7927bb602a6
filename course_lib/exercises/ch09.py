"""Exercises of chapter 09 (retrieval-augmented generation)."""

from __future__ import annotations

import numpy as np

from course_lib.exercises import exercise
from course_lib.rag.bm25 import BM25
from course_lib.rag.metrics import ndcg_at_k


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


def _ndcg_chunks(ranked, relevant, k=10):          # wrong: counts every chunk of a document
    gains = [1.0 if d in relevant else 0.0 for d in ranked[:k]]
    dcg = sum(g / np.log2(i + 2) for i, g in enumerate(gains))
    idcg = sum(1 / np.log2(i + 2) for i in range(min(len(relevant), k)))
    return min(dcg / idcg, 1.0)


def _ndcg_log_rank(ranked, relevant, k=10):        # wrong: log2(rank) puts rank 1 at log2(1) = 0
    docs = list(dict.fromkeys(ranked))[:k]
    dcg = sum(1 / np.log2(i + 1) if i > 0 else 1.0 for i, d in enumerate(docs) if d in relevant)
    return dcg / sum(1 / np.log2(i + 1) if i > 0 else 1.0 for i in range(min(len(relevant), k)))


@exercise("09.2", answer="ndcg_at_10", wrong=(_ndcg_chunks, _ndcg_log_rank), writes_code=True)
def check_ndcg(fn) -> str:
    """Check exercise 09.2: the learner's document-level nDCG@10 against ``ndcg_at_k``."""
    cases = [(["a", "a", "x", "b", "y", "b"], {"a", "b", "c"}), (["x", "y", "b", "b", "b"], {"b"}),
             (["x", "y"], {"a"}), (["b", "a"], {"a", "b"}), (["x", "x", "a", "y", "z", "w", "v", "u", "t", "s", "b"],
                                                          {"a", "b"})]
    for ranked, relevant in cases:
        got, want = float(fn(ranked, relevant)), ndcg_at_k(ranked, relevant, 10)
        assert abs(got - want) < 1e-9, (f"ranking {ranked}, relevant {sorted(relevant)}: got {got:.4f}, expected "
                                        f"{want:.4f} (dedupe chunks to documents first; gain 1/log2(rank + 1))")
    return "同一文档的多个 chunk 只在第一次出现时计分。"


@exercise("09.3", answer="answer", wrong=(1 / 3, 1.0, 0.25))
def check_doc_level_rr(answer) -> str:
    """Check exercise 09.3: the learner's document-level reciprocal rank against the worked value 1/2."""
    assert isinstance(answer, (int, float)), f"answer should be a number, got {answer!r}"
    assert abs(answer - 0.5) < 1e-9, ("the chunks json.dumps#0 and json.dumps#1 are one document: the document "
                                      "ranking is [json.dumps, json.loads], so the relevant one is at rank 2")
    return "文档级排名：json.loads 排第 2，倒数排名 = 1/2。"
