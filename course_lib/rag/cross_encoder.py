"""Cross-encoder reranking: MiniLM reads question and passage together and gives one relevance logit.

Nogueira & Cho 2019 ("Passage Re-ranking with BERT", §2): feed ``[CLS] question [SEP] passage [SEP]``
(token types 0 for the question, 1 for the passage) through BERT and score it from the ``[CLS]`` state::

    s(q, p) = w · tanh(W_p h_[CLS] + b_p) + b          h = BertModel(pair)        (B, T, D) → (B,)

the head of transformers' ``BertForSequenceClassification(num_labels=1)``, which sentence-transformers'
``CrossEncoder`` runs (the same parameter names, so the shipped file loads there too). The encoder
starts from all-MiniLM-L6-v2; ``scripts/train_reranker.py`` fine-tunes the top layers, the pooler
and the head with a listwise softmax loss over one positive and hard negatives per question, and
``data/reranker/`` ships only those tensors (fp16) beside the config that made them.

Unlike a bi-encoder (:mod:`course_lib.rag.dense`), every (question, passage) pair costs a forward
pass, so only the first stage's top candidates are reranked (:class:`CrossEncoderRetriever`).
The passage is read as ``title + "\\n" + text``: stdlib docstrings do not name their function, the
title does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from course_lib.checks import check_token_ids
from course_lib.models.bert import BertModel, init_weights
from course_lib.rag.types import Passage, Retriever, check_k, check_query

RERANKER_DIR = Path(__file__).resolve().parents[2] / "data" / "reranker"


class CrossEncoder(nn.Module):
    """``BertModel`` (with pooler) + ``Linear(D, 1)``: pair token ids → one relevance logit per row."""

    def __init__(self, bert: BertModel):
        super().__init__()
        if bert.pooler is None:
            raise ValueError("the cross-encoder scores from the pooled [CLS] state: bert needs its pooler")
        self.bert = bert
        self.classifier = nn.Linear(bert.config.hidden_size, 1)
        init_weights(self.classifier)

    def lower(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor,
              stop: int) -> torch.Tensor:
        """Hidden states after embeddings and layers ``[0, stop)``: ``(B, T) → (B, T, D)``."""
        mask = attention_mask.bool()[:, None, None, :]                      # (B, 1, 1, T)
        h = self.bert.embeddings(input_ids, token_type_ids)                 # (B, T, D)
        for layer in self.bert.encoder.layer[:stop]:
            h, _ = layer(h, mask, False)
        return h

    def upper(self, h: torch.Tensor, attention_mask: torch.Tensor, start: int) -> torch.Tensor:
        """Layers ``[start, L)``, pooler and head on hidden states: ``(B, T, D) → (B,)`` logits."""
        mask = attention_mask.bool()[:, None, None, :]                      # (B, 1, 1, T)
        for layer in self.bert.encoder.layer[start:]:
            h, _ = layer(h, mask, False)
        return self.classifier(self.bert.pooler(h)).squeeze(-1)             # (B, D) → (B, 1) → (B,)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` ids, mask (1 = real token) and token types → ``(B,)`` relevance logits."""
        config = self.bert.config
        check_token_ids(input_ids, config.vocab_size, "input_ids", config.max_position_embeddings)
        check_token_ids(token_type_ids, config.type_vocab_size, "token_type_ids")
        if attention_mask.shape != input_ids.shape or token_type_ids.shape != input_ids.shape:
            raise ValueError(f"attention_mask {tuple(attention_mask.shape)} and token_type_ids "
                             f"{tuple(token_type_ids.shape)} must have input_ids' shape {tuple(input_ids.shape)}")
        n = config.num_hidden_layers
        return self.upper(self.lower(input_ids, attention_mask, token_type_ids, n), attention_mask, n)


def encode_pairs(tokenizer, question: str, passages: Sequence[str], max_length: int = 256):
    """Right-padded ``(input_ids, attention_mask, token_type_ids)``, each ``(n, T)``, of ``[CLS] q [SEP] p [SEP]``."""
    encs = [tokenizer.encode(question, p, max_length=max_length) for p in passages]
    width = max(len(e.input_ids) for e in encs)
    ids = torch.full((len(encs), width), tokenizer.pad_id, dtype=torch.long)   # (n, T)
    mask, types = torch.zeros_like(ids), torch.zeros_like(ids)
    for row, e in enumerate(encs):
        n = len(e.input_ids)
        ids[row, :n], mask[row, :n], types[row, :n] = torch.tensor(e.input_ids), 1, torch.tensor(e.token_type_ids)
    return ids, mask, types


def passage_text(p: Passage) -> str:
    """What the cross-encoder reads of a passage: its title, a newline, its text."""
    return f"{p.title}\n{p.text}"


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes (the shipped weights are checked against ``config.json``)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def base_cross_encoder(seed: int = 0) -> CrossEncoder:
    """all-MiniLM-L6-v2 (the course's BERT, pooler included) + a fresh head drawn with ``seed``."""
    from course_lib import weights

    bert = BertModel.from_hf(weights.minilm_config(), weights.minilm_state_dict())
    torch.manual_seed(seed)
    return CrossEncoder(bert).eval()


class CrossEncoderReranker:
    """``score(question, passages) -> (n,)`` logits; plugs into :class:`course_lib.rag.RerankRetriever`."""

    def __init__(self, model: CrossEncoder, tokenizer=None, max_length: int = 256, batch_size: int = 16):
        if tokenizer is None:
            from course_lib.rag.chunking import minilm_tokenizer
            tokenizer = minilm_tokenizer()
        self.model, self.tokenizer = model.eval(), tokenizer
        self.max_length, self.batch_size = check_k(max_length), check_k(batch_size)

    @classmethod
    def load(cls, path: str | Path = RERANKER_DIR, **kwargs) -> CrossEncoderReranker:
        """The shipped reranker: MiniLM base + the trained tensors of ``path/weights.safetensors`` (sha256 checked)."""
        from safetensors.torch import load_file

        path = Path(path)
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        file = path / config["weights_file"]
        if file_sha256(file) != config["weights_sha256"]:
            raise ValueError(f"{file} does not match the sha256 recorded in {path / 'config.json'}")
        model = base_cross_encoder(config["seed"])
        trained = {k: v.float() for k, v in load_file(file).items()}
        missing = set(trained) - set(model.state_dict())
        if missing:
            raise ValueError(f"{file} holds tensors the cross-encoder does not have: {sorted(missing)[:3]}")
        model.load_state_dict(trained, strict=False)
        return cls(model, max_length=config["max_length"], **kwargs)

    @torch.no_grad()
    def score(self, question: str, passages: Sequence[str]) -> np.ndarray:
        """Relevance logits of ``passages`` for ``question``, in the given order (length-sorted batches)."""
        check_query(question)
        if isinstance(passages, str):
            raise TypeError("passages must be a sequence of strings, not one string")
        order = sorted(range(len(passages)), key=lambda i: -len(passages[i]))
        out = np.zeros(len(passages))
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            batch = encode_pairs(self.tokenizer, question, [passages[i] for i in idx], self.max_length)
            out[idx] = self.model(*batch).numpy()                           # (b,)
        return out


class CrossEncoderRetriever:
    """First stage ``base`` (e.g. hybrid) for ``candidates`` chunks, reordered by the cross-encoder.

    ``rank_weight`` w adds the first stage's opinion: score = logit − w · ln(first-stage rank), chosen
    on dev questions held out from training (``data/reranker/config.json``); w = 0 is the pure reranker.
    """

    def __init__(self, base: Retriever, reranker: CrossEncoderReranker, candidates: int = 20,
                 rank_weight: float = 0.0):
        if rank_weight < 0:
            raise ValueError(f"rank_weight must be >= 0, got {rank_weight}")
        self.base, self.reranker = base, reranker
        self.candidates, self.rank_weight = check_k(candidates), float(rank_weight)

    @classmethod
    def load(cls, base: Retriever, path: str | Path = RERANKER_DIR, **kwargs) -> CrossEncoderRetriever:
        """The shipped reranker over ``base`` with the shipped ``candidates`` and ``rank_weight``."""
        config = json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
        kwargs = {"candidates": config["candidates"], "rank_weight": config["rank_weight"], **kwargs}
        return cls(base, CrossEncoderReranker.load(path), **kwargs)

    def search(self, query: str, k: int = 10) -> list[Passage]:
        check_query(query)
        check_k(k)
        hits = self.base.search(query, max(k, self.candidates))
        if not hits:
            return []
        logits = self.reranker.score(query, [passage_text(p) for p in hits])
        scores = logits - self.rank_weight * np.log(np.arange(1, len(hits) + 1))
        order = np.argsort(-scores, kind="stable")[:k]       # ties keep the first stage's order
        return [Passage(hits[i].id, hits[i].doc_id, hits[i].title, hits[i].text, float(scores[i])) for i in order]
