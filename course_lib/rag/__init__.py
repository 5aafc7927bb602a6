"""Retrieval-augmented generation (chapter 09): corpus, retrievers, grounded answers, evaluation.

Every retriever has ``search(query: str, k: int) -> list[Passage]`` (best first), the interface the
agent and chain chapters use::

    from course_lib import rag
    chunks = rag.structured_chunks(rag.load_corpus())
    bm25 = rag.BM25Retriever(chunks)
    dense = rag.DenseRetriever(chunks)
    hybrid = rag.HybridRetriever([bm25, dense])
    rag.RAG(hybrid).answer("How do I pretty-print JSON?")            # SmolLM2 writes, cites [n]
    rag.GroundedRAG(hybrid).answer("How do I pretty-print JSON?")    # quotes the supporting sentences, cites them

Answers are scored by :mod:`course_lib.rag.answer_metrics` (key facts, refusal F1, ALCE citation recall / precision).
"""

from course_lib.rag.answer import RAG, Answer, CitationCheck, CiteFirst, check_citations
from course_lib.rag.answer_metrics import answer_score, citation_scores, refusal_scores
from course_lib.rag.bm25 import BM25, BM25Retriever, tokenize
from course_lib.rag.chunking import Chunk, fixed_chunks, structured_chunks
from course_lib.rag.cross_encoder import CrossEncoderReranker, CrossEncoderRetriever
from course_lib.rag.dense import DenseRetriever
from course_lib.rag.documents import Document, load_corpus, notebook_prose, python_topics, stdlib_docs
from course_lib.rag.evaluate import answer_row, retrieval_table
from course_lib.rag.grounded import GroundedRAG
from course_lib.rag.hybrid import HybridRetriever
from course_lib.rag.hyde import HydeRetriever
from course_lib.rag.metrics import ndcg_at_k, recall_at_k, reciprocal_rank
from course_lib.rag.questions import Question, load_questions, validate
from course_lib.rag.rerank import LLMReranker, RerankRetriever
from course_lib.rag.types import Passage, Retriever

__all__ = ["BM25", "RAG", "Answer", "BM25Retriever", "CitationCheck", "CiteFirst", "Chunk", "CrossEncoderReranker", "CrossEncoderRetriever", "DenseRetriever", "Document",
           "GroundedRAG", "HybridRetriever", "answer_row", "answer_score", "citation_scores", "refusal_scores", "HydeRetriever", "LLMReranker", "Passage", "Question", "RerankRetriever", "Retriever",
           "check_citations", "fixed_chunks", "load_corpus", "load_questions", "ndcg_at_k", "notebook_prose", "python_topics",
           "recall_at_k", "reciprocal_rank", "retrieval_table", "stdlib_docs", "structured_chunks", "tokenize",
           "validate"]
