"""Our skip-gram word2vec against gensim's ``Word2Vec(sg=1)`` on the same corpus and settings.

Corpora: gensim's ``lee_background.cor`` (300 news stories, 58k tokens, ``simple_preprocess``) and
the Python docs' help topics (``pydoc_data.topics``, 59k tokens, our sentence splitter). Quality is
checked on the compiled kernel (the benchmarked one), which equals the torch kernel (last tests). Metric:
Spearman correlation with wordsim353 (gensim's own ``evaluate_word_pairs`` on both models, so the
OOV handling is identical). On the Python docs 98.6 % of wordsim353 is OOV (5 pairs left: Spearman
swings from −0.7 to −0.1 with gensim's own seed), so there the models are compared by the agreement
of their cosine similarities over frequent words, against gensim's agreement with itself.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gensim.models import Word2Vec as GensimWord2Vec

from course_lib.embedding import word2vec
from course_lib.embedding.corpora import lee_sentences, python_docs_sentences
from course_lib.embedding.evaluate import similarity_agreement, wordsim353

SETTINGS = dict(dim=100, window=5, negative=5, sample=1e-3, min_count=2, epochs=10)   # 62 % of wordsim353 OOV


@pytest.fixture(scope="module")
def lee():
    return lee_sentences()


def gensim_model(sentences, epochs, seed):
    return GensimWord2Vec(sentences, vector_size=SETTINGS["dim"], window=5, negative=5, sample=1e-3, min_count=2,
                          epochs=epochs, sg=1, workers=1, seed=seed)


def test_wordsim353_spearman_within_005_of_gensim(lee, one_thread):
    ours = word2vec.train(lee, batch_size=1024, seed=0, kernel="numba", **SETTINGS)   # the fast path
    ref = gensim_model(lee, SETTINGS["epochs"], seed=0)
    assert set(ours.words) == set(ref.wv.index_to_key)   # same vocabulary (order may differ on ties)
    rho_ours, oov, _ = wordsim353(ours.words, ours.vectors)
    rho_ref, oov_ref, _ = wordsim353(ref.wv.index_to_key, ref.wv.vectors)
    print(f"wordsim353 Spearman: ours {rho_ours:.3f}, gensim {rho_ref:.3f}; OOV {oov:.1f}%; "
          f"ours {ours.words_per_second:.0f} words/s")
    assert oov == oov_ref and round(oov) == 62   # the lee corpus lacks 62 % of wordsim353's words
    assert rho_ours >= rho_ref - 0.05, (rho_ours, rho_ref)


def test_python_docs_similarities_agree_with_gensim_as_well_as_gensim_with_itself(one_thread):
    docs = python_docs_sentences()
    epochs = 5
    ours = word2vec.train(docs, batch_size=1024, seed=0, kernel="numba", **{**SETTINGS, "epochs": epochs})
    ref, ref_other_seed = gensim_model(docs, epochs, seed=0), gensim_model(docs, epochs, seed=1)
    assert set(ours.words) == set(ref.wv.index_to_key)
    rho_ours, oov, used = wordsim353(ours.words, ours.vectors)
    rho_ref, _, _ = wordsim353(ref.wv.index_to_key, ref.wv.vectors)
    assert round(oov, 1) == 98.6 and used == 5   # wordsim353 is general English: 5 pairs left, no verdict
    probe = [w for w, c in zip(ours.words, ours.counts) if c >= 20][:300]   # the 300 most frequent words
    ours_vs_gensim = similarity_agreement(ours.words, ours.vectors, ref.wv.index_to_key, ref.wv.vectors, probe)
    gensim_vs_gensim = similarity_agreement(ref_other_seed.wv.index_to_key, ref_other_seed.wv.vectors,
                                            ref.wv.index_to_key, ref.wv.vectors, probe)
    print(f"Python docs: similarity agreement ours–gensim {ours_vs_gensim:.3f}, gensim–gensim (seeds 0/1) "
          f"{gensim_vs_gensim:.3f}; wordsim353 on {used} pairs: ours {rho_ours:.2f}, gensim {rho_ref:.2f}")
    assert ours_vs_gensim >= gensim_vs_gensim - 0.05, (ours_vs_gensim, gensim_vs_gensim)


def test_alias_table_reproduces_the_distribution_exactly():
    weights = np.array([5000, 1200, 300, 40, 7, 2, 0, 1], np.float64) ** 0.75
    prob, alias = word2vec.alias_table(weights)
    n = len(weights)
    mass = prob.double().numpy() / n                             # each column keeps prob[i] of its 1/n
    np.add.at(mass, alias.numpy(), (1 - prob.double().numpy()) / n)   # and hands the rest to alias[i]
    np.testing.assert_allclose(mass, weights / weights.sum(), atol=1e-7)   # float32 prob: ~1e-8 per column
    draws = word2vec.draw_alias(prob, alias, (200_000,), torch.Generator().manual_seed(0))
    freq = np.bincount(draws.numpy(), minlength=n) / len(draws)
    np.testing.assert_allclose(freq, weights / weights.sum(), atol=4e-3)   # 200k draws: σ ≤ 1.2e-3
    assert freq[6] == 0                                          # a weight of 0 is never drawn
    with pytest.raises(ValueError, match="non-negative"):
        word2vec.alias_table(np.array([1.0, -1.0]))


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


@pytest.mark.parametrize("corpus, batch_size", [("lee", 1), ("lee", 1024), ("tiny", 1), ("tiny", 7)])
def test_numba_kernel_equals_torch_kernel(lee, corpus, batch_size, one_thread):
    # "tiny": 3 words, so a noise word often equals the truth (skipped by both); batch_size=1 is word2vec.c's update
    sentences = lee[:60] if corpus == "lee" else [["a", "b", "c", "a", "b"]] * 30
    settings = dict(dim=16, epochs=2, min_count=2, batch_size=batch_size, seed=3)
    if corpus == "tiny":
        settings.update(min_count=1, sample=0)   # subsampling would drop nearly every token of 3 frequent words
    fast = word2vec.train(sentences, kernel="numba", **settings)
    ref = word2vec.train(sentences, kernel="torch", **settings)
    assert fast.words == ref.words and fast.output.abs().sum() > 0
    if batch_size == 1:      # one pair per step: the same float32 operations in the same order
        assert torch.equal(fast.vectors, ref.vectors) and torch.equal(fast.output, ref.output)
    else:                    # a batch's dot products are summed in another order by torch's einsum
        torch.testing.assert_close(fast.vectors, ref.vectors, rtol=0, atol=1e-6)
        torch.testing.assert_close(fast.output, ref.output, rtol=0, atol=1e-6)


def test_unknown_kernel_is_rejected(lee):
    with pytest.raises(ValueError, match="kernel must be one of"):
        word2vec.train(lee[:5], kernel="cuda")
