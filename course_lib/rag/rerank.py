"""Reranking with a small LLM: P("Yes") that a passage answers the question (Nogueira et al. 2020, monoT5).

monoT5 reads ``Query: q Document: d Relevant:`` and scores ``softmax(logit_true, logit_false)[true]``.
Here SmolLM2-Instruct gets a chat prompt asking whether the passage answers the question, and the
next-token logits after the assistant tag give

    score = P(Yes) / (P(Yes) + P(No)) = sigmoid(z_Yes − z_No)

Prompts of different lengths run as one left-padded batch (:func:`course_lib.generation.pad_left`
and its attention mask): one forward pass per batch, no generation. Only the top candidates of a
first-stage retriever are reranked, because each costs a forward pass over ~200 tokens.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from course_lib.generation import model_device, pad_left
from course_lib.rag.types import Passage, Retriever, check_k, check_query

PROMPT = ("Passage:\n{passage}\n\nQuestion: {question}\n\n"
          "Does the passage answer the question? Answer Yes or No.")


class LLMReranker:
    """``score(question, passages) -> (n,)`` relevance probabilities from SmolLM2's next-token logits."""

    def __init__(self, model=None, tokenizer=None, batch_size: int = 8, max_passage_tokens: int = 192):
        from course_lib import pretrained

        self.model = pretrained.smollm2() if model is None else model
        self.tokenizer = pretrained.smollm2_tokenizer() if tokenizer is None else tokenizer
        self.batch_size, self.max_passage_tokens = check_k(batch_size), check_k(max_passage_tokens)
        self.yes, self.no = self.tokenizer.encode("Yes")[0], self.tokenizer.encode("No")[0]

    def prompt_ids(self, question: str, passage: str) -> list[int]:
        """Token ids of the relevance prompt; the passage is cut to ``max_passage_tokens`` tokens."""
        from course_lib.pretrained import smollm2_chat_prompt

        cut = self.tokenizer.decode(self.tokenizer.encode_ordinary(passage)[:self.max_passage_tokens])
        text = smollm2_chat_prompt([{"role": "user", "content": PROMPT.format(passage=cut, question=question)}])
        return self.tokenizer.encode(text)

    @torch.no_grad()
    def score(self, question: str, passages: Sequence[str]) -> np.ndarray:
        """P(Yes | prompt) / (P(Yes) + P(No)) for each passage, in the given order."""
        check_query(question)
        prompts = [self.prompt_ids(question, p) for p in passages]
        out = np.zeros(len(prompts))
        device = model_device(self.model)
        for start in range(0, len(prompts), self.batch_size):
            ids, mask = pad_left(prompts[start:start + self.batch_size], self.tokenizer.pad_token_id)  # (B, T)
            logits, _ = self.model.decode_step(ids.to(device), None, mask.to(device))                   # (B, V)
            out[start:start + len(ids)] = torch.sigmoid(logits[:, self.yes] - logits[:, self.no]).cpu().numpy()
        return out


class RerankRetriever:
    """First stage ``base`` (e.g. hybrid) for ``candidates`` chunks, then the LLM reranker orders them."""

    def __init__(self, base: Retriever, reranker: LLMReranker, candidates: int = 20):
        self.base, self.reranker, self.candidates = base, reranker, check_k(candidates)

    def search(self, query: str, k: int = 10) -> list[Passage]:
        check_k(k)
        hits = self.base.search(query, max(k, self.candidates))
        scores = self.reranker.score(query, [p.text for p in hits])
        order = np.argsort(-scores, kind="stable")[:k]       # ties keep the first stage's order
        return [Passage(hits[i].id, hits[i].doc_id, hits[i].title, hits[i].text, float(scores[i])) for i in order]
