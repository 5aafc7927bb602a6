"""Word and sentence embeddings (chapter 07): word2vec skip-gram with negative sampling.

``word2vec.train`` (the skip-gram training loop) stays behind its module name.
"""

from course_lib.embedding.contrastive import embed, fine_tune, info_nce
from course_lib.embedding.corpora import lee_sentences, python_docs_sentences, split_words
from course_lib.embedding.evaluate import similarity_agreement, wordsim353
from course_lib.embedding.word2vec import (
    Word2Vec,
    alias_table,
    build_vocab,
    draw_alias,
    keep_probability,
    skipgram_pairs,
)

__all__ = ["Word2Vec", "alias_table", "build_vocab", "draw_alias", "embed", "fine_tune", "info_nce",
           "keep_probability", "lee_sentences", "python_docs_sentences", "similarity_agreement",
           "skipgram_pairs", "split_words", "wordsim353"]
