"""A word-level tokenizer for small closed vocabularies (chapter 02b's captions): one id per word, no subwords."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from course_lib.tokenizers.batch import BatchEncoding, check_texts, pad_batch


class WordTokenizer:
    """Word-level tokenizer over a closed vocabulary: ``<pad>`` = 0, ``<bos>`` = 1, ``<eos>`` = 2, then ``words``."""

    specials = ("<pad>", "<bos>", "<eos>")

    def __init__(self, words: Sequence[str]):
        if isinstance(words, str) or not words or len(set(words)) != len(words) or set(words) & set(self.specials):
            raise ValueError("words must be a non-empty sequence of distinct words, without the special tokens")
        self.vocab = {w: i for i, w in enumerate([*self.specials, *words])}
        self.inverse = {i: w for w, i in self.vocab.items()}
        self.pad_id, self.bos_id, self.eos_id = 0, 1, 2

    @property
    def vocab_size(self) -> int:
        """Number of ids: the specials plus the words."""
        return len(self.vocab)

    def encode(self, text: str) -> list[int]:
        """``"a red ring"`` → ``[<bos>, a, red, ring, <eos>]``; unknown words raise ValueError."""
        unknown = [w for w in text.split() if w not in self.vocab or w in self.specials]
        if unknown:
            raise ValueError(f"words {unknown} are not in the vocabulary {list(self.vocab)[3:]}")
        return [self.bos_id, *(self.vocab[w] for w in text.split()), self.eos_id]

    def encode_batch(self, texts: list[str], padding_side: str = "right", length: int | None = None) -> BatchEncoding:
        """Encode and pad with ``<pad>`` to ``length`` (default: the longest) → :class:`BatchEncoding` ``(B, T)``."""
        rows = [self.encode(t) for t in check_texts(texts)]
        return pad_batch(rows, self.pad_id, padding_side, width=length)

    def decode(self, ids) -> str:
        """Ids → words, dropping ``<bos>``/``<pad>`` and stopping at ``<eos>``."""
        words = []
        for i in (ids.tolist() if isinstance(ids, torch.Tensor) else ids):
            if i == self.eos_id:
                break
            if i not in (self.pad_id, self.bos_id):
                words.append(self.inverse[i])
        return " ".join(words)
