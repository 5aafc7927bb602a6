"""The compiled (numba) skip-gram negative-sampling step: the torch batch step as loops over rows.

What it mirrors: word2vec.c's ``TrainModelThread`` (skip-gram branch, ``negative > 0``) and gensim's
``w2v_fast_sentence_sg_neg`` (``gensim/models/word2vec_inner.pyx``): per (context, centre) pair, one
dot product per target (the centre word, then ``negative`` noise words), ``g = (label − σ(f)) · α``,
``neu1e += g · u`` and ``u += g · v``, then ``v += neu1e``. Here each batch of ``batch_size`` pairs
first computes every ``g`` and ``neu1e`` from the vectors as they were before the batch, then updates
the output rows, then the input rows: exactly :func:`course_lib.embedding.word2vec._torch_batches`
(``index_select`` → einsum → ``index_add_``), so the two kernels differ only by float32 rounding
(summation order of the dot products and ``exp``); ``batch_size=1`` is word2vec.c's per-pair update.
A noise word equal to the centre word gets ``g = 0``, as the torch path's ``masked_fill_``.

One thread, no hogwild: the result is deterministic. Compilation:
:func:`course_lib.vectordb.jit.compiled` (cached on disk where numba can write; the first call of a
fresh process compiles, ≈ 2 s).
"""

from __future__ import annotations

import math

import numpy as np

from course_lib.vectordb.jit import compiled


@compiled
def sgns_batches(vectors: np.ndarray, output: np.ndarray, inputs: np.ndarray, truths: np.ndarray,
                 negs: np.ndarray, lrs: np.ndarray, batch_size: int) -> None:
    """Train ``vectors`` (V, d) and ``output`` (V, d) in place on the pairs ``inputs[p] → truths[p]`` with
    noise words ``negs`` (P, K), in batches of ``batch_size`` pairs, batch ``i`` at learning rate ``lrs[i]``."""
    n, negative = negs.shape
    dim = vectors.shape[1]
    grad = np.empty((batch_size, 1 + negative), np.float32)     # (B, 1 + K) = −∂loss/∂score · lr
    neu1e = np.empty((batch_size, dim), np.float32)             # (B, d) input-vector updates
    for bi in range((n + batch_size - 1) // batch_size):
        b0, b1, lr = bi * batch_size, min(n, (bi + 1) * batch_size), lrs[bi]
        for p in range(b0, b1):                                 # 1. g and neu1e from the pre-batch vectors
            w, truth = inputs[p], truths[p]
            for j in range(dim):
                neu1e[p - b0, j] = 0.0
            for k in range(1 + negative):
                t = truth if k == 0 else negs[p, k - 1]
                if k > 0 and t == truth:
                    grad[p - b0, k] = 0.0                       # a noise word equal to the truth is skipped
                    continue
                f = np.float32(0.0)
                for j in range(dim):
                    f += vectors[w, j] * output[t, j]
                label = np.float32(1.0) if k == 0 else np.float32(0.0)
                g = (label - np.float32(1.0) / (np.float32(1.0) + np.float32(math.exp(-f)))) * lr
                grad[p - b0, k] = g
                for j in range(dim):
                    neu1e[p - b0, j] += g * output[t, j]
        for p in range(b0, b1):                                 # 2. output rows, with the pre-batch inputs
            w = inputs[p]
            for k in range(1 + negative):
                g = grad[p - b0, k]
                if g != 0.0:
                    t = truths[p] if k == 0 else negs[p, k - 1]
                    for j in range(dim):
                        output[t, j] += g * vectors[w, j]
        for p in range(b0, b1):                                 # 3. input rows
            w = inputs[p]
            for j in range(dim):
                vectors[w, j] += neu1e[p - b0, j]
