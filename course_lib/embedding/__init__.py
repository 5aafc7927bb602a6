"""Word and sentence embeddings (chapter 07): word2vec skip-gram with negative sampling."""
