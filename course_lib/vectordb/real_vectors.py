"""Real vectors for the vector-search benchmarks: MiniLM embeddings of the stdlib passages, computed once.

``stdlib_passage_vectors()`` embeds :func:`course_lib.corpus.stdlib_passages` (~24k sentences and
sentence pairs from the pinned docstrings and the pydoc topics) with the course's all-MiniLM-L6-v2
(:func:`course_lib.pretrained.minilm`) and caches the float32 matrix in the weights cache folder
(:func:`course_lib.weights.cache_dir`), keyed by a hash of the texts: a second call reads ~30 MB
instead of minutes of CPU. The cache is never committed.
"""

from __future__ import annotations

import hashlib
import os
import tempfile

import numpy as np

from course_lib import weights
from course_lib.corpus import stdlib_passages

CACHE_FORMAT = 1   # bump when the cached vectors change meaning
MODEL, DIM = "all-MiniLM-L6-v2", 384


def texts_key(texts: list[str]) -> str:
    """A short hash of the texts (in order), the model name and :data:`CACHE_FORMAT`."""
    h = hashlib.sha256(f"{MODEL}-v{CACHE_FORMAT}".encode())
    for t in texts:
        h.update(t.encode("utf-8") + b"\0")
    return h.hexdigest()[:16]


def embed_cached(texts: list[str], chunk: int = 1024, batch_size: int = 64, progress: bool = True) -> np.ndarray:
    """``(N, 384)`` float32 unit vectors of ``texts`` by MiniLM, read from / written to the cache folder.

    Texts are sorted by length and encoded ``chunk`` at a time (little padding, a progress bar);
    the file is written atomically (temp file + ``os.replace``).
    """
    if not texts or not all(isinstance(t, str) and t for t in texts):
        raise ValueError("texts must be a non-empty list of non-empty strings")
    path = weights.cache_dir() / f"minilm-vectors-{texts_key(texts)}.npy"
    if path.exists():
        out = np.load(path)
        if out.shape == (len(texts), DIM) and out.dtype == np.float32:
            return out
    from tqdm.auto import tqdm

    from course_lib import pretrained

    encoder = pretrained.minilm()

    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.empty((len(texts), DIM), np.float32)
    for start in tqdm(range(0, len(order), chunk), desc="MiniLM", disable=not progress):
        idx = order[start:start + chunk]
        out[idx] = encoder.encode([texts[i] for i in idx], batch_size=batch_size).numpy()   # (chunk, 384)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npy.tmp")
    with os.fdopen(fd, "wb") as f:
        np.save(f, out)
    os.replace(tmp, path)
    return out


def stdlib_passage_vectors(limit: int | None = None, progress: bool = True) -> tuple[list[str], np.ndarray]:
    """``(texts, vectors)``: the stdlib passages (the first ``limit`` of them) and their MiniLM vectors."""
    texts = stdlib_passages()
    if limit is not None:
        if limit < 1:
            raise ValueError(f"limit must be positive, got {limit}")
        texts = texts[:limit]
    return texts, embed_cached(texts, progress=progress)
