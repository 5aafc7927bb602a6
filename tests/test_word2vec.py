"""Our skip-gram word2vec against gensim's ``Word2Vec(sg=1)`` on the same corpus and settings.

Corpus: gensim's ``lee_background.cor`` (300 news stories, 58k tokens) tokenised with gensim's
``simple_preprocess``. Metric: Spearman correlation with wordsim353 (gensim's own
``evaluate_word_pairs`` on both models, so the OOV handling is identical).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gensim.models import KeyedVectors
from gensim.models import Word2Vec as GensimWord2Vec
from gensim.test.utils import datapath
from gensim.utils import simple_preprocess

from course_lib.embedding import word2vec

SETTINGS = dict(dim=100, window=5, negative=5, sample=1e-3, min_count=2, epochs=10)   # 62 % of wordsim353 OOV


@pytest.fixture(scope="module")
def lee():
    with open(datapath("lee_background.cor")) as f:
        return [simple_preprocess(line) for line in f]


def spearman(words, vectors):
    kv = KeyedVectors(vectors.shape[1])
    kv.add_vectors(words, vectors)
    _, rho, oov = kv.evaluate_word_pairs(datapath("wordsim353.tsv"))
    return rho.statistic, oov


def test_wordsim353_spearman_within_005_of_gensim(lee, one_thread):
    ours = word2vec.train(lee, batch_size=1024, seed=0, **SETTINGS)
    ref = GensimWord2Vec(lee, vector_size=SETTINGS["dim"], window=5, negative=5, sample=1e-3, min_count=2,
                         epochs=SETTINGS["epochs"], sg=1, workers=1, seed=0)
    assert set(ours.words) == set(ref.wv.index_to_key)   # same vocabulary (order may differ on ties)
    rho_ours, oov = spearman(ours.words, ours.vectors.numpy())
    rho_ref, oov_ref = spearman(ref.wv.index_to_key, ref.wv.vectors)
    print(f"wordsim353 Spearman: ours {rho_ours:.3f}, gensim {rho_ref:.3f}; OOV {oov:.1f}%; "
          f"ours {ours.words_per_second:.0f} words/s")
    assert oov == oov_ref and round(oov) == 62   # the lee corpus lacks 62 % of wordsim353's words
    assert rho_ours >= rho_ref - 0.05, (rho_ours, rho_ref)


def test_subsampling_probability_matches_gensim(lee):
    ref = GensimWord2Vec(lee, min_count=5, sample=1e-3, epochs=1, workers=1, vector_size=8)
    words, counts = word2vec.build_vocab(lee, 5)
    ours = word2vec.keep_probability(counts, 1e-3)
    theirs = np.array([ref.wv.get_vecattr(w, "sample_int") / 2**32 for w in words])
    np.testing.assert_allclose(ours, theirs, atol=1e-6)   # gensim stores it as a uint32 fraction


def test_skipgram_pairs_respect_sentences_and_window():
    rng = np.random.default_rng(0)
    ids = np.arange(12)
    sentence = np.array([0] * 5 + [1] * 7)
    pairs = word2vec.skipgram_pairs(ids, sentence, window=3, rng=rng)
    assert (sentence[pairs[:, 0]] == sentence[pairs[:, 1]]).all()
    gap = np.abs(pairs[:, 0] - pairs[:, 1])
    assert gap.min() == 1 and gap.max() <= 3
    # window 1 everywhere: exactly the neighbours inside each sentence
    full = word2vec.skipgram_pairs(ids, sentence, window=1, rng=rng)
    assert len(full) == 2 * (4 + 6)


def test_neighbours_and_analogy_api(lee):
    model = word2vec.train(lee[:100], dim=16, epochs=1, min_count=3)
    near = model.most_similar(["police"], topn=3)
    assert len(near) == 3 and "police" not in [w for w, _ in near]
    assert len(model.most_similar(["police", "government"], ["said"], topn=2)) == 2
    with pytest.raises(KeyError, match="not in the vocabulary"):
        model["zzzz"]


@pytest.mark.parametrize("kwargs, message", [
    (dict(dim=0), "dim must be a positive int"),
    (dict(window=1.5), "window must be a positive int"),
    (dict(min_count=10**6), "no word occurs"),
])
def test_bad_input(lee, kwargs, message):
    with pytest.raises(ValueError, match=message):
        word2vec.train(lee[:5], **kwargs)


def test_training_moves_vectors():
    torch.manual_seed(0)
    model = word2vec.train([["a", "b", "c", "a", "b"]] * 50, dim=4, epochs=2, min_count=1, sample=0)
    assert model.output.abs().sum() > 0
