"""word2vec skip-gram with negative sampling (Mikolov et al. 2013, "Distributed Representations of
Words and Phrases and their Compositionality"), following word2vec.c / gensim:

- **subsampling** of frequent words (§2.3, word2vec.c's formula): keep a token of frequency ``f``
  (share of all tokens) with probability ``(sqrt(f / t) + 1) · t / f``, ``t = sample``;
- a **reduced window**: each centre word draws ``b`` in ``1..window`` and uses ``b`` words each side;
- **negative sampling** (§2.2): for each pair, ``negative`` noise words drawn from the unigram
  distribution raised to the power 3/4 (O(1) each with Walker's alias method, exact like gensim's
  ``cum_table`` bisection; word2vec.c uses a 10⁸-entry table), loss
  ``−log σ(u_t·v_w) − Σ_k log σ(−u_k·v_w)`` for input word ``w`` and true target ``t``. As in
  word2vec.c and gensim's ``w2v_fast_sentence_sg_neg``, each (centre, context) pair trains the
  *context* word's input vector ``v`` to predict the *centre* word (``t``), and a noise word equal
  to ``t`` is skipped;
- plain SGD whose learning rate decays **linearly** from ``alpha`` to ``min_alpha`` over training.

Input vectors start as gensim 4's ``uniform(−1, 1) / dim``, output vectors at zero. The gradient is
written out (no autograd) and applied a batch of ``batch_size`` pairs at a time (``batch_size=1`` is
word2vec.c's per-pair update). Two kernels run the same step on the same random draws (noise words
and a learning rate per batch, handed over ``CHUNK_PAIRS`` pairs at a time): ``"torch"`` (the default,
:func:`_torch_batches`, vectorised: rows gathered with ``index_select``, ≈ 4× faster than
``tensor[idx]`` on CPU, and scattered back with ``index_add_``) and ``"numba"``
(:mod:`course_lib.embedding.word2vec_kernels`, the same loops compiled: ≈ 3× faster on one core);
they agree up to float32 rounding (bit for bit at ``batch_size=1``, tests/test_word2vec.py).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Word2Vec:
    """A trained skip-gram model (Mikolov et al. 2013): vocabulary, counts, input and output vectors."""
    words: list[str]               # vocabulary, most frequent first
    counts: np.ndarray             # (V,) corpus counts
    vectors: torch.Tensor          # (V, dim) input embeddings ("syn0"), the word vectors
    output: torch.Tensor           # (V, dim) output embeddings ("syn1neg")
    words_per_second: float = 0.0

    def __post_init__(self):
        self.index = {w: i for i, w in enumerate(self.words)}

    def __getitem__(self, word: str) -> torch.Tensor:
        if word not in self.index:
            raise KeyError(f"{word!r} is not in the vocabulary ({len(self.words)} words)")
        return self.vectors[self.index[word]]

    def most_similar(self, positive: list[str], negative: list[str] = (), topn: int = 5) -> list[tuple[str, float]]:
        """Cosine neighbours of ``Σ positive − Σ negative`` (unit-normalised words), inputs excluded (gensim's rule)."""
        unit = torch.nn.functional.normalize(self.vectors, dim=1)
        query = sum(unit[self.index[w]] for w in positive) - sum((unit[self.index[w]] for w in negative), torch.zeros(1))
        for w in [*positive, *negative]:
            self[w]
        sims = unit @ torch.nn.functional.normalize(query, dim=0)
        sims[[self.index[w] for w in [*positive, *negative]]] = -math.inf
        top = sims.topk(topn)
        return [(self.words[i], float(s)) for s, i in zip(top.values, top.indices)]


def build_vocab(sentences: list[list[str]], min_count: int) -> tuple[list[str], np.ndarray]:
    """Words seen at least ``min_count`` times, most frequent first (ties by word), and their counts (word2vec.c)."""
    counts = Counter(w for s in sentences for w in s)
    kept = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
    return kept, np.array([counts[w] for w in kept], np.int64)


def keep_probability(counts: np.ndarray, sample: float) -> np.ndarray:
    """word2vec.c's subsampling: ``(sqrt(c / (t·T)) + 1) · t·T / c``, capped at 1 (``T`` = total count)."""
    threshold = sample * counts.sum()
    return np.minimum(1.0, (np.sqrt(counts / threshold) + 1) * threshold / counts)


def alias_table(weights: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Walker's alias method (Vose 1991, "A linear algorithm for generating random numbers with a given
    distribution"): ``(prob, alias)`` such that drawing a column ``i`` uniformly, then keeping ``i`` with
    probability ``prob[i]`` or else taking ``alias[i]``, samples index ``j`` with probability ``weights[j] / Σ``."""
    weights = np.asarray(weights, np.float64)
    if weights.ndim != 1 or len(weights) == 0 or not np.isfinite(weights).all() or (weights < 0).any() or weights.sum() <= 0:
        raise ValueError("weights must be a non-empty 1-D array of finite, non-negative numbers with a positive sum")
    scaled = weights * len(weights) / weights.sum()          # mean 1: each column holds mass 1
    prob, alias = np.ones(len(weights)), np.arange(len(weights))
    small = [i for i, x in enumerate(scaled) if x < 1]
    large = [i for i, x in enumerate(scaled) if x >= 1]
    while small and large:
        s, g = small.pop(), large.pop()
        prob[s], alias[s] = scaled[s], g                     # column s: s's own mass, topped up by g
        scaled[g] -= 1 - scaled[s]
        (small if scaled[g] < 1 else large).append(g)
    return torch.from_numpy(prob).float(), torch.from_numpy(alias)   # leftovers keep prob 1 (rounding)


def draw_alias(prob: torch.Tensor, alias: torch.Tensor, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    """``shape`` indices drawn from the alias table: a uniform column, then the column's own index or its alias."""
    n = math.prod(shape)
    column = torch.randint(len(prob), (n,), generator=gen)
    own = torch.rand(n, generator=gen) < prob.index_select(0, column)
    return torch.where(own, column, alias.index_select(0, column)).view(shape)


def skipgram_pairs(ids: np.ndarray, sentence: np.ndarray, window: int, rng: np.random.Generator) -> np.ndarray:
    """All (centre, context) position pairs of one epoch, ``(P, 2)``; each centre draws its window ``b ≤ window``."""
    b = rng.integers(1, window + 1, size=len(ids))          # reduced window per centre
    pairs = []
    for offset in range(1, window + 1):
        for sign in (1, -1):
            centre = np.arange(max(0, -sign * offset), len(ids) - max(0, sign * offset))
            ctx = centre + sign * offset
            ok = (sentence[centre] == sentence[ctx]) & (b[centre] >= offset)
            pairs.append(np.stack([centre[ok], ctx[ok]], 1))
    pairs = np.concatenate(pairs)
    return pairs[np.argsort(pairs[:, 0], kind="stable")]    # corpus order, like word2vec.c


def _torch_batches(vectors: np.ndarray, output: np.ndarray, inputs: np.ndarray, truths: np.ndarray,
                   negs: np.ndarray, lrs: np.ndarray, batch_size: int) -> None:
    """The vectorised step: batch ``i`` of pairs ``inputs → truths`` with noise ``negs`` (P, K) at rate ``lrs[i]``.

    Arrays as :func:`course_lib.embedding.word2vec_kernels.sgns_batches` takes them; updates in place.
    """
    vectors, output = torch.from_numpy(vectors), torch.from_numpy(output)
    inputs, truths, negs = torch.from_numpy(inputs), torch.from_numpy(truths), torch.from_numpy(negs)
    dim, negative = vectors.shape[1], negs.shape[1]
    label = torch.zeros(batch_size, 1 + negative)
    label[:, 0] = 1.0                                                    # target 0 is the true context
    for bi, b0 in enumerate(range(0, len(inputs), batch_size)):
        word, truth, noise = inputs[b0:b0 + batch_size], truths[b0:b0 + batch_size], negs[b0:b0 + batch_size]
        targets = torch.cat([truth[:, None], noise], 1)                  # (B, 1 + K)
        v = vectors.index_select(0, word)                                # (B, d)
        u = output.index_select(0, targets.reshape(-1)).view(len(word), 1 + negative, dim)  # (B, 1 + K, d)
        g = (label[:len(word)] - torch.sigmoid(torch.einsum("bkd,bd->bk", u, v))) * float(lrs[bi])  # (B, 1 + K)
        g[:, 1:].masked_fill_(noise == truth[:, None], 0.0)              # a noise word equal to the truth is skipped
        vectors.index_add_(0, word, torch.einsum("bk,bkd->bd", g, u))
        output.index_add_(0, targets.reshape(-1), (g[:, :, None] * v[:, None, :]).reshape(-1, dim))


def _numba_batches():
    from course_lib.embedding.word2vec_kernels import sgns_batches  # numba compiles on first use

    return sgns_batches


KERNELS = {"numba": _numba_batches, "torch": lambda: _torch_batches}
CHUNK_PAIRS = 1 << 16   # pairs handed to the kernel per call (rounded to whole batches)


def train(sentences: list[list[str]], dim: int = 100, window: int = 5, negative: int = 5, sample: float = 1e-3,
          min_count: int = 5, epochs: int = 5, alpha: float = 0.025, min_alpha: float = 1e-4,
          batch_size: int = 256, seed: int = 0, progress: bool = False, kernel: str = "torch") -> Word2Vec:
    """Train skip-gram with negative sampling; defaults are gensim's ``Word2Vec(sg=1)`` defaults.

    ``kernel="torch"`` (:func:`_torch_batches`, the reference chapter 07 rebuilds bit for bit) or
    ``"numba"`` (compiled, :mod:`course_lib.embedding.word2vec_kernels`, ≈ 3× faster): the same updates
    from the same random draws, equal up to float32 rounding.
    """
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {sorted(KERNELS)}, got {kernel!r}")
    for name, value in (("dim", dim), ("window", window), ("negative", negative), ("epochs", epochs),
                        ("min_count", min_count), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    step = KERNELS[kernel]()
    words, counts = build_vocab(sentences, min_count)
    if not words:
        raise ValueError(f"no word occurs min_count={min_count} times; the corpus is too small")
    index = {w: i for i, w in enumerate(words)}
    ids = np.array([index[w] for s in sentences for w in s if w in index], np.int64)
    sentence = np.repeat(np.arange(len(sentences)), [sum(w in index for w in s) for s in sentences])
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    vectors = (torch.rand(len(words), dim, generator=gen) * 2 - 1) / dim  # gensim 4's init: uniform(−1, 1)/dim
    output = torch.zeros(len(words), dim)
    prob, alias = alias_table(counts.astype(np.float64) ** 0.75)   # noise P_n(w) ∝ count^0.75
    keep = keep_probability(counts, sample) if sample > 0 else np.ones(len(words))
    vec_np, out_np = vectors.numpy(), output.numpy()                     # views: the kernels update in place
    total, done, start = epochs * len(ids), 0, time.perf_counter()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=epochs, desc="word2vec epochs")
    chunk = max(1, CHUNK_PAIRS // batch_size) * batch_size             # pairs per kernel call
    for _ in range(epochs):
        kept = rng.random(len(ids)) < keep[ids]                          # subsampling, fresh each epoch
        e_ids, e_sent = ids[kept], sentence[kept]
        pairs = e_ids[skipgram_pairs(e_ids, e_sent, window, rng)]        # (P, 2) word ids (centre, context)
        # word2vec.c / gensim: the *context* word's input vector predicts the *centre* word
        inputs, truths = pairs[:, 1].copy(), pairs[:, 0].copy()
        for c0 in range(0, len(pairs), chunk):
            c1 = min(len(pairs), c0 + chunk)
            starts = np.arange(c0, c1, batch_size)                       # (batches,) first pair of each batch
            frac = (done + len(ids) * starts / max(len(pairs), 1)) / total
            lrs = np.maximum(min_alpha, alpha - (alpha - min_alpha) * frac).astype(np.float32)   # linear decay
            negs = torch.cat([draw_alias(prob, alias, (min(c1, b0 + batch_size) - b0, negative), gen)
                              for b0 in starts]).numpy()                 # (C, K), drawn batch by batch
            step(vec_np, out_np, inputs[c0:c1], truths[c0:c1], negs, lrs, batch_size)
        done += len(ids)
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.close()
    return Word2Vec(words, counts, vectors, output, words_per_second=total / (time.perf_counter() - start))
