"""Dense retrieval: MiniLM sentence vectors in the course's vector store (Karpukhin et al. 2020, DPR §3).

Each chunk is embedded once (WordPiece → BERT → mean pooling → L2 norm, :mod:`course_lib.models.sentence_encoder`),
stored in a :class:`~course_lib.vectordb.store.Collection` with cosine metric; a query is embedded the
same way and the store returns the exact top-k by cosine similarity. Chunks are encoded in batches
sorted by length (less padding) with a progress bar; the vectors can be cached on disk, keyed by a
hash of the chunk texts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from course_lib.rag.types import Passage, check_k, check_query
from course_lib.vectordb.store import VectorStore


def embed_texts(encoder, texts: Sequence[str], batch_size: int = 32, progress: bool = True,
                cache_dir: str | Path | None = None) -> np.ndarray:
    """``(N, 384)`` float32 unit vectors of ``texts``; with ``cache_dir``, reuse a saved ``.npy`` of the same texts."""
    texts = list(texts)
    path = None
    if cache_dir is not None:
        key = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:20]
        path = Path(cache_dir) / f"minilm-{key}.npy"
        if path.is_file():
            return np.load(path)
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))      # long first: similar lengths per batch
    out = np.zeros((len(texts), encoder.model.config.hidden_size), np.float32)
    for start in tqdm(range(0, len(order), batch_size), desc="embed", disable=not progress):
        idx = order[start:start + batch_size]
        out[idx] = encoder.encode([texts[i] for i in idx], batch_size=batch_size).numpy()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, out)
    return out


class DenseRetriever:
    """MiniLM + vector store over chunks: ``search(query, k)`` by cosine similarity."""

    def __init__(self, chunks: Sequence, encoder=None, vectors: np.ndarray | None = None, batch_size: int = 32,
                 progress: bool = True, cache_dir: str | Path | None = None):
        if not chunks:
            raise ValueError("the corpus is empty: DenseRetriever needs at least one chunk")
        if encoder is None:
            from course_lib.pretrained import minilm
            encoder = minilm()
        self.chunks, self.encoder = list(chunks), encoder
        if vectors is None:
            vectors = embed_texts(encoder, [c.text for c in self.chunks], batch_size, progress, cache_dir)
        if len(vectors) != len(self.chunks):
            raise ValueError(f"vectors has {len(vectors)} rows for {len(self.chunks)} chunks")
        self.store = VectorStore()
        self.collection = self.store.create_collection("chunks", dim=vectors.shape[1], metric="cosine")
        self.collection.upsert([c.id for c in self.chunks], vectors, [{"doc_id": c.doc_id} for c in self.chunks])
        self.by_id = {c.id: c for c in self.chunks}

    @property
    def vectors(self) -> np.ndarray:
        return self.collection.vectors     # (N, D), unit rows, in chunk order

    def embed_query(self, query: str) -> np.ndarray:
        return self.encoder.encode([check_query(query)]).numpy()[0]          # (D,)

    def search_vector(self, vector: np.ndarray, k: int = 10, filter: dict | None = None) -> list[Passage]:
        """Top-``k`` chunks (all when fewer) for a query vector (HyDE searches with a generated passage's vector)."""
        hits = self.collection.search(np.asarray(vector, np.float32)[None], min(check_k(k), len(self.chunks)), filter)
        return [Passage(h.id, c.doc_id, c.title, c.text, h.score) for h in hits for c in [self.by_id[h.id]]]

    def search(self, query: str, k: int = 10, filter: dict | None = None) -> list[Passage]:
        return self.search_vector(self.embed_query(query), k, filter)

    def score_all(self, query: str) -> np.ndarray:
        """Cosine similarity of the query with every chunk ``(N,)``, in chunk order."""
        return self.vectors @ self.embed_query(query)
