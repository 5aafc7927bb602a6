"""Real vectors for the benchmarks: MiniLM embeddings of stdlib passages, cached by a hash of the texts."""

from __future__ import annotations

import numpy as np
import pytest

from course_lib import pretrained
from course_lib.corpus import stdlib_passages
from course_lib.vectordb import real_vectors


def test_embed_cached_equals_the_encoder_and_reads_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))
    texts = stdlib_passages()[:: 997][:12]                       # a small slice of the real corpus, mixed lengths
    vecs = real_vectors.embed_cached(texts, chunk=5, batch_size=4, progress=False)
    ref = pretrained.minilm().encode(texts).numpy()
    assert vecs.dtype == np.float32 and vecs.shape == (12, real_vectors.DIM)
    np.testing.assert_allclose(vecs, ref, atol=1e-5)             # length-sorted batches: only padding differs
    assert [p.name for p in tmp_path.iterdir()] == [f"minilm-vectors-{real_vectors.texts_key(texts)}.npy"]

    def no_model():
        raise AssertionError("the cache should have answered")

    monkeypatch.setattr(pretrained, "minilm", no_model)
    np.testing.assert_array_equal(real_vectors.embed_cached(texts, progress=False), vecs)
    assert real_vectors.texts_key(texts) != real_vectors.texts_key(texts[::-1])


def test_bad_input():
    with pytest.raises(ValueError, match="non-empty list"):
        real_vectors.embed_cached([])
    with pytest.raises(ValueError, match="non-empty list"):
        real_vectors.embed_cached(["ok", ""])
    with pytest.raises(ValueError, match="limit must be positive"):
        real_vectors.stdlib_passage_vectors(limit=0)


def test_qps_at_equal_recall_interpolates_between_bracketing_settings():
    from bench.bench_vectordb import _qps_at_recall

    curve = [(1, 0.50, 4000.0), (2, 0.70, 2000.0), (4, 0.90, 1000.0)]
    assert _qps_at_recall(curve, 0.40) == 4000.0            # already above the target at the first setting
    assert _qps_at_recall(curve, 0.70) == 2000.0
    assert abs(_qps_at_recall(curve, 0.80) - np.sqrt(2000.0 * 1000.0)) < 1e-6   # log-linear midpoint
    assert _qps_at_recall(curve, 0.95) == 0.0               # never reached: no QPS at that recall
