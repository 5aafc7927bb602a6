"""Retrieval metrics: hand-computed cases and scikit-learn's ndcg_score where the definitions agree."""

import math

import numpy as np
import pytest
from sklearn.metrics import ndcg_score

from course_lib.rag.metrics import dedupe_docs, evaluate_rankings, ndcg_at_k, recall_at_k, reciprocal_rank


def test_chunks_count_once_for_their_document():
    # chunks a#0, a#1, b#0, c#2 -> documents a, b, c (a's second chunk dropped, b moves up to rank 2)
    ranked = ["a", "a", "b", "c"]
    assert dedupe_docs(ranked) == ["a", "b", "c"]
    assert recall_at_k(ranked, {"b"}, 2) == 1.0
    assert reciprocal_rank(ranked, {"c"}) == pytest.approx(1 / 3)


def test_hand_computed():
    ranked = ["x", "r1", "y", "r2", "z"]
    rel = {"r1", "r2", "r3"}
    assert recall_at_k(ranked, rel, 1) == 0.0
    assert recall_at_k(ranked, rel, 2) == pytest.approx(1 / 3)
    assert recall_at_k(ranked, rel, 5) == pytest.approx(2 / 3)
    assert reciprocal_rank(ranked, rel) == 0.5
    assert reciprocal_rank(ranked, rel, k=1) == 0.0
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k(ranked, rel, 10) == pytest.approx(dcg / idcg)
    assert ndcg_at_k(["r1", "r2"], {"r1", "r2"}) == 1.0
    assert ndcg_at_k(["x"], {"r1"}) == 0.0
    out = evaluate_rankings([ranked, ["r1"]], [rel, {"r1"}], ks=(1, 5))
    assert out == pytest.approx({"recall@1": 0.5, "recall@5": (2 / 3 + 1) / 2, "MRR": 0.75,
                                 "nDCG@10": (dcg / idcg + 1) / 2})


@pytest.mark.parametrize("seed", range(5))
def test_ndcg_equals_sklearn_when_all_relevant_are_ranked(seed):
    # sklearn scores a full list of candidates; its ideal DCG sorts the true labels of that list. With
    # binary labels and every relevant document among the candidates both definitions coincide.
    rng = np.random.default_rng(seed)
    n, k = 30, 10
    docs = [f"d{i}" for i in range(n)]
    relevant = set(rng.choice(docs, size=int(rng.integers(1, 6)), replace=False))
    scores = rng.permutation(n).astype(float)            # distinct: no tie handling involved
    ranked = [docs[i] for i in np.argsort(-scores)]
    y_true = np.array([[1.0 if d in relevant else 0.0 for d in docs]])
    assert ndcg_at_k(ranked, relevant, k) == pytest.approx(ndcg_score(y_true, scores[None], k=k), abs=1e-12)


def test_bad_input():
    with pytest.raises(ValueError, match="relevant must hold"):
        recall_at_k(["a"], [], 1)
    with pytest.raises(ValueError, match="k must be a positive int"):
        recall_at_k(["a"], ["a"], 0)
    with pytest.raises(TypeError, match="not one string"):
        ndcg_at_k("abc", ["a"])
    with pytest.raises(ValueError, match="one ranking per question"):
        evaluate_rankings([["a"]], [])
