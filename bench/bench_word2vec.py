"""word2vec benchmark (issue 29): our skip-gram with negative sampling vs gensim's ``Word2Vec(sg=1)``.

Same corpus (gensim's ``lee_background.cor``, 58k tokens), same settings (dim 100, window 5,
negative 5, sample 1e-3, min_count 2, 5 epochs), one thread each (gensim ``workers=1``; our numba
kernel is single-threaded). Each side is timed as one whole call (vocabulary, subsampling, training),
so words/s = corpus tokens × epochs / wall seconds for both and the ratio is the ratio of times.
"""

from __future__ import annotations

import torch

from bench.harness import BenchResult, benchmark, interleaved
from course_lib.embedding import word2vec
from course_lib.embedding.corpora import lee_sentences

SETTINGS = dict(dim=100, window=5, negative=5, sample=1e-3, min_count=2, epochs=5)


@benchmark("embedding: word2vec skip-gram words/s vs gensim")
def word2vec_words_per_second() -> BenchResult:
    """Training throughput on the lee corpus, one thread each, interleaved."""
    from gensim.models import Word2Vec as GensimWord2Vec

    torch.set_num_threads(1)
    lee = lee_sentences()
    words = sum(map(len, lee)) * SETTINGS["epochs"]

    def gensim():
        GensimWord2Vec(lee, vector_size=SETTINGS["dim"], window=SETTINGS["window"], negative=SETTINGS["negative"],
                       sample=SETTINGS["sample"], min_count=SETTINGS["min_count"], epochs=SETTINGS["epochs"],
                       sg=1, workers=1, seed=0)

    times = interleaved({"ours": lambda: word2vec.train(lee, seed=0, kernel="numba", **SETTINGS), "gensim": gensim}, rounds=3)
    return BenchResult(words / times["ours"], words / times["gensim"], "words/s", True, 0.5,
                       "gensim Word2Vec(sg=1, workers=1)",
                       notes=f"lee corpus, {words} words per call, numba kernel, batch_size 256")
