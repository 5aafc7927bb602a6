"""Retrieval-augmented generation (chapter 09): corpus, retrievers, grounded answers, evaluation."""
