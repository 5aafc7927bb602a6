"""BM25 from scratch vs rank_bm25 (Okapi with its idf floor) and bm25s (Lucene variant), same tokens."""

import numpy as np
import pytest
import rank_bm25

from course_lib.rag.bm25 import BM25, BM25Retriever, tokenize, top_k
from course_lib.rag.documents import python_topics

QUERIES = ["how does the assert statement work", "for loop else clause break", "lambda lambda closure scope",
           "the a of and", "with statement context manager __enter__", "zzzunknownterm", "import"]


@pytest.fixture(scope="module")
def corpus():
    # no stop-word removal: "the", "a" occur in more than half the documents, so their Okapi idf is
    # negative and rank_bm25's floor (epsilon × mean idf) is exercised
    return [tokenize(d.text, stopwords=frozenset()) for d in python_topics()]


@pytest.mark.parametrize("k1,b", [(1.5, 0.75), (1.2, 0.3), (0.9, 1.0)])
def test_okapi_scores_and_ranking_equal_rank_bm25(corpus, k1, b):
    ours, ref = BM25(corpus, k1=k1, b=b), rank_bm25.BM25Okapi(corpus, k1=k1, b=b, epsilon=0.25)
    for q in QUERIES:
        tokens = tokenize(q, stopwords=frozenset())
        a, r = ours.scores(tokens), ref.get_scores(tokens)
        # float64 on both sides; only the order of additions differs
        np.testing.assert_allclose(a, r, rtol=0, atol=1e-6)
        assert (np.argsort(-a, kind="stable") == np.argsort(-r, kind="stable")).all(), q
    floored = [w for w, v in ref.idf.items() if v == ref.epsilon * ref.average_idf]
    assert "the" in floored   # the negative-idf branch really ran
    assert ours.idf[ours.vocab["the"]] == pytest.approx(ref.idf["the"], abs=1e-12)


def test_lucene_variant_equals_bm25s(corpus):
    import bm25s

    ours = BM25(corpus, idf="lucene")
    ref = bm25s.BM25(k1=1.5, b=0.75, method="lucene")
    ref.index(corpus, show_progress=False)
    for q in QUERIES[:5]:
        tokens = [t for t in tokenize(q, stopwords=frozenset()) if t in ours.vocab]
        # bm25s stores float32 scores: relative 1e-5
        np.testing.assert_allclose(ours.scores(tokens), ref.get_scores(tokens), rtol=1e-5, atol=1e-6)


def test_batch_scores_equal_single(corpus):
    ours = BM25(corpus)
    qs = [tokenize(q) for q in QUERIES]
    np.testing.assert_allclose(ours.scores_batch(qs), np.stack([ours.scores(q) for q in qs]), atol=1e-12)


def test_top_k_is_sorted_prefix_of_full_sort():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, 200).astype(float)   # many ties
    idx, vals = top_k(scores, 17)
    full = np.lexsort((np.arange(200), -scores))[:17]
    assert idx.tolist() == full.tolist() and vals.tolist() == scores[full].tolist()
    assert top_k(scores[:3], 10)[0].tolist() == np.lexsort((np.arange(3), -scores[:3])).tolist()


def test_tokenize():
    assert tokenize("How does json.dumps() work?") == ["json", "dumps", "work"]


class _C:
    def __init__(self, i, text):
        self.id, self.doc_id, self.title, self.text = f"d{i}#0", f"d{i}", f"t{i}", text


def test_retriever_returns_passages_with_terms_only():
    r = BM25Retriever([_C(0, "json dumps serialises"), _C(1, "os path join"), _C(2, "json loads parses json")])
    hits = r.search("json", 5)
    assert [p.doc_id for p in hits] == ["d2", "d0"] and hits[0].score > hits[1].score > 0
    assert r.search("nothing matches", 3) == []


def test_bad_input():
    with pytest.raises(ValueError, match="corpus is empty"):
        BM25([])
    with pytest.raises(ValueError, match="corpus is empty"):
        BM25Retriever([])
    with pytest.raises(TypeError, match="token lists"):
        BM25(["a string"])
    with pytest.raises(ValueError, match="b must be"):
        BM25([["a"]], b=2)
    with pytest.raises(ValueError, match="idf must be"):
        BM25([["a"]], idf="bm42")
    r = BM25Retriever([_C(0, "json")])
    with pytest.raises(ValueError, match="non-empty string"):
        r.search("   ", 3)
    with pytest.raises(TypeError, match="query must be a str"):
        r.search(None, 3)
    with pytest.raises(ValueError, match="k must be a positive int"):
        r.search("json", 0)
