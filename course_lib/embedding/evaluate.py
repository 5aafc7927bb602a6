"""Intrinsic evaluation of word vectors, the same code for ours and gensim's.

- :func:`wordsim353` — Spearman correlation between cosine similarities and the human scores of
  wordsim353 (Finkelstein et al. 2002, shipped with gensim), through gensim's
  ``KeyedVectors.evaluate_word_pairs``: pairs with an out-of-vocabulary word are dropped, and the
  share dropped (the OOV rate) is returned with it.
- :func:`similarity_agreement` — Spearman correlation between two models' cosine similarities over
  all pairs of a list of probe words. On a corpus where wordsim353 is almost all OOV (the Python docs)
  this compares two trainings directly: ours vs gensim against gensim vs gensim with another seed.
"""

from __future__ import annotations

import numpy as np
import torch


def _as_array(vectors) -> np.ndarray:
    array = vectors.detach().cpu().numpy() if torch.is_tensor(vectors) else np.asarray(vectors)
    return array.astype(np.float32, copy=False)


def _check(words, vectors) -> np.ndarray:
    array = _as_array(vectors)
    if array.ndim != 2 or array.shape[0] != len(words):
        raise ValueError(f"vectors must be (len(words), dim) = ({len(words)}, dim), got {array.shape}")
    return array


def wordsim353(words: list[str], vectors) -> tuple[float, float, int]:
    """``(spearman, oov_percent, pairs_used)`` of ``vectors`` (one row per word) on wordsim353."""
    from gensim.models import KeyedVectors
    from gensim.test.utils import datapath

    array = _check(words, vectors)
    kv = KeyedVectors(array.shape[1])
    kv.add_vectors(list(words), array)
    _, rho, oov = kv.evaluate_word_pairs(datapath("wordsim353.tsv"))
    with open(datapath("wordsim353.tsv"), encoding="utf-8") as f:
        pairs = [line.split("\t")[:2] for line in f if not line.startswith("#")]
    used = sum(a.lower() in kv.key_to_index and b.lower() in kv.key_to_index for a, b in pairs)
    return float(rho.statistic), float(oov), used


def similarity_agreement(words_a: list[str], vectors_a, words_b: list[str], vectors_b, probe: list[str]) -> float:
    """Spearman correlation of the two models' cosine similarities over all pairs of ``probe`` words."""
    from scipy.stats import spearmanr

    if len(probe) < 3:
        raise ValueError(f"probe needs at least 3 words, got {len(probe)}")
    sims = []
    for words, vectors in ((words_a, vectors_a), (words_b, vectors_b)):
        array, index = _check(words, vectors), {w: i for i, w in enumerate(words)}
        missing = [w for w in probe if w not in index]
        if missing:
            raise KeyError(f"probe words not in the vocabulary: {missing[:5]}")
        x = array[[index[w] for w in probe]]
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        sims.append((x @ x.T)[np.triu_indices(len(probe), 1)])    # (P·(P−1)/2,) cosine of each pair
    return float(spearmanr(*sims).statistic)
