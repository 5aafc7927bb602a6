"""BERT benchmarks (COURSE_DESIGN §7): all-MiniLM-L6-v2 sentence embeddings, ours vs sentence-transformers.

    python -m bench minilm

Both run in this process on the same sentences, batch size and threads. "end to end" includes
tokenisation (our pure-Python WordPiece vs HF's Rust tokenizer); "model only" feeds both models the
same padded token ids.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import torch

from bench.harness import BenchResult, benchmark, time_call
from course_lib import weights
from course_lib.data import python_docs_text
from course_lib.models.bert import SentenceEncoder

BATCH = 32
ROUNDS = 5  # ours and the reference alternate, so load changes on a shared machine hit both alike


def _interleaved(ours, ref) -> tuple[float, float]:
    """Median seconds of ``ours()`` and ``ref()``, timed alternately after one warm-up each."""
    ours(), ref()
    t_ours, t_ref = [], []
    for _ in range(ROUNDS):
        t_ours.append(time_call(ours, repeat=1, warmup=0))
        t_ref.append(time_call(ref, repeat=1, warmup=0))
    return statistics.median(t_ours), statistics.median(t_ref)


def _sentences(n: int = 512) -> list[str]:
    """Course sentences (EN + ZH) and Python-docs lines of 5–60 words: a realistic length mix."""
    own = (Path(__file__).resolve().parents[1] / "data" / "bert_sentences.txt").read_text(encoding="utf-8").splitlines()
    docs = [line.strip() for line in python_docs_text(200_000).split("\n") if 5 <= len(line.split()) <= 60]
    return (own + docs)[:n]


@benchmark("minilm_embed_end_to_end", "MiniLM sentence embeddings/s incl. tokenisation, ours vs sentence-transformers")
def embed_end_to_end() -> BenchResult:
    from sentence_transformers import SentenceTransformer

    sents = _sentences()
    ours = SentenceEncoder.from_minilm()
    ref = SentenceTransformer(str(weights.minilm_path()), device="cpu")
    with torch.inference_mode():
        t_ours, t_ref = _interleaved(lambda: ours.encode(sents, batch_size=BATCH),
                                     lambda: ref.encode(sents, batch_size=BATCH, convert_to_tensor=True))
    return BenchResult(
        ours=len(sents) / t_ours, reference=len(sents) / t_ref, unit="sentences/s", higher_is_better=True,
        target=1.0, reference_name="sentence-transformers (HF BertModel sdpa + Rust tokenizer)",
        notes=f"{len(sents)} sentences, batch {BATCH}, {torch.get_num_threads()} threads, fp32 CPU")


@benchmark("minilm_model_forward", "MiniLM forward on the same padded batches, ours vs HF BertModel (sdpa)")
def model_forward() -> BenchResult:
    from transformers import BertModel as HFBertModel

    ours = SentenceEncoder.from_minilm()
    ref = HFBertModel.from_pretrained(str(weights.minilm_path()), attn_implementation="sdpa").eval()
    sents = sorted(_sentences(), key=len)
    batches = [ours.tokenizer(sents[i:i + BATCH], max_length=256) for i in range(0, len(sents), BATCH)]
    with torch.inference_mode():
        t_ours, t_ref = _interleaved(lambda: [ours.model(**b) for b in batches], lambda: [ref(**b) for b in batches])
    return BenchResult(
        ours=len(sents) / t_ours, reference=len(sents) / t_ref, unit="sentences/s", higher_is_better=True,
        target=None, reference_name="transformers BertModel, sdpa attention",
        notes="model only (no tokenisation, no pooling)")
