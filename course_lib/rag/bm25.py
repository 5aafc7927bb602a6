"""Okapi BM25 from scratch, vectorised over a sparse term–document matrix (Robertson & Zaragoza 2009, §3).

For a query q and a document d of length |d| (avgdl = mean length, N documents, n(t) documents contain t):

    score(q, d) = Σ_{t ∈ q} idf(t) · tf(t, d) · (k1 + 1) / (tf(t, d) + k1 · (1 − b + b · |d| / avgdl))

The saturating tf part (k1) and the length normalisation (b) are the paper's eq. 3.15–3.17. Two idf
variants:

- ``"okapi"``: ``log((N − n + 0.5) / (n + 0.5))`` (the Robertson–Spärck Jones weight, §3.2) with the
  floor of ``rank_bm25.BM25Okapi``: a term in more than half the documents (negative idf) gets
  ``epsilon · mean(idf)`` instead; tested equal to ``rank_bm25`` to 1e-6;
- ``"lucene"``: ``log(1 + (N − n + 0.5) / (n + 0.5))``, always positive, and without the constant
  factor (k1 + 1), as Lucene ≥ 8 computes it (Kamphuis et al. 2020); tested equal to ``bm25s``.

Everything but the query is precomputed: the per-(term, document) weights sit in a CSR matrix with
one row per term, so a query reads only the rows of its terms — ``scores = counts @ W[terms]`` —
with no Python loop over documents. A term repeated in the query counts once per occurrence, as in
rank_bm25.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from course_lib.rag.types import Passage, check_k, check_query

STOPWORDS = frozenset(
    "a an and are as at be by can do does for from how i if in is it its of on or that the this to was what "
    "when where which who why will with you".split())
_TOKEN = re.compile(r"\w+")


def tokenize(text: str, stopwords: frozenset[str] = STOPWORDS) -> list[str]:
    """Lower-cased word characters (``json.dumps`` → ``json``, ``dumps``), stop words dropped."""
    return [t for t in _TOKEN.findall(text.lower()) if t not in stopwords]


class BM25:
    """Okapi BM25 over pre-tokenised documents: ``scores(query_tokens) -> (N,)``."""

    def __init__(self, corpus: Sequence[Sequence[str]], k1: float = 1.5, b: float = 0.75,
                 idf: str = "okapi", epsilon: float = 0.25):
        if not corpus:
            raise ValueError("corpus is empty: BM25 needs at least one tokenised document")
        if not isinstance(k1, (int, float)) or k1 < 0:
            raise ValueError(f"k1 must be a number >= 0, got {k1!r}")
        if not isinstance(b, (int, float)) or not 0 <= b <= 1:
            raise ValueError(f"b must be a number in [0, 1], got {b!r}")
        if idf not in ("okapi", "lucene"):
            raise ValueError(f"idf must be 'okapi' or 'lucene', got {idf!r}")
        self.k1, self.b, self.idf_kind, self.epsilon = float(k1), float(b), idf, float(epsilon)
        self.vocab: dict[str, int] = {}
        indptr, indices, data = [0], [], []
        for doc in corpus:
            if isinstance(doc, str):
                raise TypeError("corpus must hold token lists (use tokenize(text)), not strings")
            for term, tf in Counter(doc).items():
                indices.append(self.vocab.setdefault(term, len(self.vocab)))
                data.append(tf)
            indptr.append(len(indices))
        n_docs, n_terms = len(corpus), len(self.vocab)
        tf = sp.csr_matrix((np.array(data, np.float64), np.array(indices, np.int64), np.array(indptr)),
                           shape=(n_docs, n_terms))                                        # (N, V)
        self.doc_len = np.asarray(tf.sum(axis=1)).ravel()                                 # (N,)
        self.avgdl = float(self.doc_len.mean())
        df = np.bincount(tf.indices, minlength=n_terms)                                    # (V,)
        self.idf = self._idf(df, n_docs)                                                   # (V,)
        rows = np.repeat(np.arange(n_docs), np.diff(tf.indptr))                            # doc of each nonzero
        norm = self.k1 * (1 - self.b + self.b * self.doc_len[rows] / max(self.avgdl, 1e-12))
        scale = 1.0 if idf == "lucene" else self.k1 + 1
        w = self.idf[tf.indices] * tf.data * scale / (tf.data + norm)
        self.weights = sp.csr_matrix((w, tf.indices, tf.indptr), shape=(n_docs, n_terms)).T.tocsr()  # (V, N)
        self.n_docs = n_docs

    def _idf(self, df: np.ndarray, n: int) -> np.ndarray:
        if self.idf_kind == "lucene":
            return np.log(1 + (n - df + 0.5) / (df + 0.5))
        idf = np.log(n - df + 0.5) - np.log(df + 0.5)
        floor = self.epsilon * idf.mean() if len(idf) else 0.0
        return np.where(idf < 0, floor, idf)

    def _query_terms(self, query_tokens: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        counts = Counter(t for t in query_tokens if t in self.vocab)
        return np.array([self.vocab[t] for t in counts], np.int64), np.array(list(counts.values()), np.float64)

    def scores(self, query_tokens: Sequence[str]) -> np.ndarray:
        """BM25 score of every document ``(N,)`` (0 where no query term occurs)."""
        terms, counts = self._query_terms(query_tokens)
        if len(terms) == 0:
            return np.zeros(self.n_docs)
        return self.weights[terms].T @ counts                                              # (N,)

    def scores_batch(self, queries: Sequence[Sequence[str]]) -> np.ndarray:
        """Scores of several queries at once ``(Q, N)``: one sparse (Q, V) × (V, N) product."""
        rows, cols, vals = [], [], []
        for i, q in enumerate(queries):
            terms, counts = self._query_terms(q)
            rows += [i] * len(terms)
            cols += terms.tolist()
            vals += counts.tolist()
        qm = sp.csr_matrix((vals, (rows, cols)), shape=(len(queries), len(self.vocab)))
        return (qm @ self.weights).toarray()                                               # (Q, N)

    def top_k(self, query_tokens: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices and scores of the ``k`` best documents, best first (ties: lower index first)."""
        return top_k(self.scores(query_tokens), k)


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest entries of ``scores`` ``(N,)``, best first, ties by lower index (no full sort)."""
    k = min(k, len(scores))
    kth = -np.partition(-scores, k - 1)[k - 1]                  # the k-th largest value
    above = np.flatnonzero(scores > kth)
    cand = np.concatenate([above, np.flatnonzero(scores == kth)[:k - len(above)]])
    order = cand[np.lexsort((cand, -scores[cand]))]
    return order, scores[order]


class BM25Retriever:
    """BM25 over chunks (anything with ``id``, ``doc_id``, ``title``, ``text``): ``search(query, k)``."""

    def __init__(self, chunks: Sequence, k1: float = 1.5, b: float = 0.75, idf: str = "okapi",
                 tokenizer=tokenize):
        if not chunks:
            raise ValueError("the corpus is empty: BM25Retriever needs at least one chunk")
        self.chunks, self.tokenizer = list(chunks), tokenizer
        self.index = BM25([tokenizer(c.text) for c in self.chunks], k1=k1, b=b, idf=idf)

    def search(self, query: str, k: int = 10) -> list[Passage]:
        """The ``k`` best chunks; chunks without any query term are never returned."""
        tokens = self.tokenizer(check_query(query))
        ids, scores = self.index.top_k(tokens, check_k(k))
        return [Passage(self.chunks[i].id, self.chunks[i].doc_id, self.chunks[i].title, self.chunks[i].text,
                        float(s)) for i, s in zip(ids, scores) if s > 0]
