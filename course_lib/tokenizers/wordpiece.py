"""WordPiece, BERT's tokenizer, written from scratch.

Devlin et al. 2018 (BERT), §3 "Input/Output Representations"; Wu et al. 2016 (GNMT), §4.1.
Three stages, exactly as HF ``tokenizers`` runs them for a BERT checkpoint
(``BertNormalizer`` → ``BertPreTokenizer`` → ``WordPiece`` → ``[CLS] … [SEP]``):

1. **normalise** (:func:`normalize`): drop control characters, map whitespace to ``" "``,
   put spaces around CJK ideographs (every Chinese character becomes its own word),
   strip accents (NFD, drop non-spacing marks) and lower-case — both as the checkpoint's
   ``tokenizer_config.json`` says (``do_lower_case``, ``strip_accents``; ``None`` = follow
   lower-casing);
2. **pre-tokenise** (:func:`pre_tokenize`): split on whitespace, isolate every punctuation character;
3. **WordPiece** (:meth:`WordPieceTokenizer.wordpiece`): greedy longest-match-first; pieces after
   the first carry the prefix ``##``; a word with no segmentation (or > 100 characters) is ``[UNK]``.

Special tokens (``[MASK]``, ``[CLS]``, …) written in the raw text are matched before normalisation.
Character classes come from Python's ``unicodedata`` (Unicode 14 in 3.11); HF's Rust tables are
older, so ~760 code points added to Unicode later (or re-categorised) tokenise differently — see
``tests/test_wordpiece.py``. Unassigned code points (``Cn``) are kept, as HF does.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

from course_lib.tokenizers.batch import BatchEncoding, check_texts, pad_batch

# Unicode White_Space (what Rust's char::is_whitespace uses, which HF tokenizers calls).
_WHITESPACE = set("\t\n\x0b\x0c\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000") | {
    chr(c) for c in range(0x2000, 0x200B)
}
# CJK Unified Ideograph blocks (BERT's ``_is_chinese_char``): these are split into single characters.
_CJK_RANGES = (
    (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F),
)
_ASCII_PUNCT = set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


def is_whitespace(ch: str) -> bool:
    """BERT's whitespace test (HF ``BertTokenizer``'s ``_is_whitespace``)."""
    return ch in _WHITESPACE


def is_control(ch: str) -> bool:
    """Control, format, private-use, surrogate (``Cc Cf Co Cs``; not unassigned ``Cn``), except ``\\t\\n\\r``."""
    if ch in "\t\n\r":
        return False
    return unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cs")


def is_chinese_char(ch: str) -> bool:
    """True for a CJK unified ideograph (the ranges BERT splits into single characters)."""
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


def is_punctuation(ch: str) -> bool:
    """ASCII punctuation (``$``, ``+``, ``^`` … count too) or any Unicode ``P*`` character."""
    return ch in _ASCII_PUNCT or unicodedata.category(ch).startswith("P")


def normalize(text: str, lowercase: bool = True, strip_accents: bool | None = None,
              tokenize_chinese_chars: bool = True) -> str:
    """BERT's normaliser. ``strip_accents=None`` follows ``lowercase`` (as in BERT's config)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    strip_accents = lowercase if strip_accents is None else strip_accents
    out = []
    for ch in text:
        if ch in ("\x00", "\ufffd") or is_control(ch):
            continue
        if is_whitespace(ch):
            out.append(" ")
        elif tokenize_chinese_chars and is_chinese_char(ch):
            out.append(f" {ch} ")
        else:
            out.append(ch)
    text = "".join(out)
    if strip_accents:
        text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
    if lowercase:
        text = "".join(c.lower() for c in text)  # per character: no final-sigma rule, like HF
    return text


def pre_tokenize(text: str) -> list[str]:
    """Split a normalised text into words: on whitespace, and every punctuation mark alone."""
    words, current = [], []
    for ch in text:
        if is_whitespace(ch) or is_punctuation(ch):
            if current:
                words.append("".join(current))
                current = []
            if not is_whitespace(ch):
                words.append(ch)
        else:
            current.append(ch)
    if current:
        words.append("".join(current))
    return words


@dataclass
class Encoding:
    """Token ids of one text (or text pair) with their segment ids, BERT's two inputs."""
    input_ids: list[int]       # [CLS] A [SEP] (B [SEP])
    token_type_ids: list[int]  # 0 for [CLS] A [SEP], 1 for B [SEP]
    tokens: list[str]          # the same ids as strings, for looking at


class WordPieceTokenizer:
    """BERT's tokenizer: :func:`normalize` → :func:`pre_tokenize` → greedy longest-match WordPiece."""

    def __init__(self, vocab: list[str], lowercase: bool = True, strip_accents: bool | None = None,
                 tokenize_chinese_chars: bool = True, unk_token: str = "[UNK]", cls_token: str = "[CLS]",
                 sep_token: str = "[SEP]", pad_token: str = "[PAD]", mask_token: str = "[MASK]",
                 max_input_chars_per_word: int = 100, model_max_length: int = 512):
        if not vocab or len(set(vocab)) != len(vocab):
            raise ValueError("vocab must be a non-empty list of distinct tokens (line i of vocab.txt = id i)")
        self.vocab = {tok: i for i, tok in enumerate(vocab)}
        self.id_to_token = list(vocab)
        self.specials = [unk_token, cls_token, sep_token, pad_token, mask_token]
        for tok in self.specials:
            if tok not in self.vocab:
                raise ValueError(f"special token {tok!r} is not in the vocabulary")
        self.unk_token, self.cls_token, self.sep_token, self.pad_token, self.mask_token = self.specials
        self.lowercase, self.strip_accents, self.tokenize_chinese_chars = lowercase, strip_accents, tokenize_chinese_chars
        self.max_input_chars_per_word = max_input_chars_per_word
        self.model_max_length = model_max_length
        self._special_re = re.compile("(" + "|".join(re.escape(t) for t in self.specials) + ")")
        self.wordpiece = lru_cache(maxsize=2**16)(self._wordpiece)  # words repeat: Zipf's law

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> WordPieceTokenizer:
        """Read ``vocab.txt`` and the options in ``tokenizer_config.json`` of a BERT checkpoint folder."""
        folder = Path(folder)
        if not (folder / "vocab.txt").is_file():
            raise FileNotFoundError(f"{folder} has no vocab.txt (expected a BERT checkpoint folder)")
        vocab = (folder / "vocab.txt").read_text(encoding="utf-8").split("\n")
        vocab = vocab[:-1] if vocab[-1] == "" else vocab
        conf_file = folder / "tokenizer_config.json"
        conf = json.loads(conf_file.read_text(encoding="utf-8")) if conf_file.is_file() else {}
        return cls(vocab, lowercase=conf.get("do_lower_case", True), strip_accents=conf.get("strip_accents"),
                   tokenize_chinese_chars=conf.get("tokenize_chinese_chars", True),
                   model_max_length=min(int(conf.get("model_max_length", 512)), 10**6))

    def __len__(self) -> int:
        return len(self.id_to_token)

    @property
    def pad_id(self) -> int:
        """Id of ``[PAD]``."""
        return self.vocab[self.pad_token]

    @property
    def mask_id(self) -> int:
        """Id of ``[MASK]``."""
        return self.vocab[self.mask_token]

    def _wordpiece(self, word: str) -> tuple[str, ...]:
        """Greedy longest-match-first: take the longest vocabulary prefix, then continue with ``##``."""
        if len(word) > self.max_input_chars_per_word:
            return (self.unk_token,)
        pieces, start = [], 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.vocab:
                    break
                end -= 1
            if end == start:  # no prefix of the rest is in the vocabulary: the whole word is unknown
                return (self.unk_token,)
            pieces.append(piece)
            start = end
        return tuple(pieces)

    def tokenize(self, text: str) -> list[str]:
        """Text → WordPiece tokens (no [CLS]/[SEP]); special tokens in the text stay whole."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        tokens = []
        for i, chunk in enumerate(self._special_re.split(text)):
            if i % 2:  # odd chunks are the matched special tokens
                tokens.append(chunk)
                continue
            norm = normalize(chunk, self.lowercase, self.strip_accents, self.tokenize_chinese_chars)
            for word in pre_tokenize(norm):
                tokens.extend(self.wordpiece(word))
        return tokens

    def convert_tokens_to_ids(self, tokens: list[str]) -> list[int]:
        """Token strings → ids (``[UNK]``'s id for unknown tokens)."""
        unk = self.vocab[self.unk_token]
        return [self.vocab.get(t, unk) for t in tokens]

    def encode(self, text: str, text_pair: str | None = None, max_length: int | None = None,
               add_special_tokens: bool = True, truncation: bool = True) -> Encoding:
        """``[CLS] A [SEP]`` (or ``[CLS] A [SEP] B [SEP]``), cut to ``max_length`` tokens.

        Truncation cuts the ends, HF ``longest_first`` style: the shorter segment keeps its length if
        the longer one can take the rest of the budget, else the budget is split in halves.
        ``add_special_tokens=False`` leaves out [CLS]/[SEP]; ``truncation=False`` keeps every token.
        """
        max_length = self.model_max_length if max_length is None else max_length
        if not truncation:
            max_length = 10**12
        n_special = (2 if text_pair is None else 3) if add_special_tokens else 0
        if max_length < n_special:
            raise ValueError(f"max_length must be >= {n_special} to hold the special tokens, got {max_length}")
        a = self.tokenize(text)
        b = [] if text_pair is None else self.tokenize(text_pair)
        budget = max_length - n_special
        if text_pair is None:
            a = a[:budget]
        elif len(a) + len(b) > budget:
            short, long = sorted((len(a), len(b)))
            long = max(short, budget - short)
            if short + long > budget:
                short, long = budget // 2, budget // 2 + budget % 2
            n_a, n_b = (short, long) if len(a) <= len(b) else (long, short)
            a, b = a[:n_a], b[:n_b]
        cls, sep = ([self.cls_token], [self.sep_token]) if add_special_tokens else ([], [])
        tokens = [*cls, *a, *sep]
        types = [0] * len(tokens)
        if text_pair is not None:
            tokens += [*b, *sep]
            types += [1] * (len(b) + len(sep))
        return Encoding(self.convert_tokens_to_ids(tokens), types, tokens)

    def encode_batch(self, texts: list[str], padding_side: str = "right", max_length: int | None = None,
                     add_special_tokens: bool = True, truncation: bool = True) -> BatchEncoding:
        """Encode single texts and pad them to one width (right by default, for an encoder) → :class:`BatchEncoding`."""
        rows = [self.encode(t, max_length=max_length, add_special_tokens=add_special_tokens,
                            truncation=truncation).input_ids for t in check_texts(texts)]
        return pad_batch(rows, self.pad_id, padding_side)

    def __call__(self, texts: list[str], max_length: int | None = None) -> dict[str, torch.Tensor]:
        """HF-style padded batch dict: ``input_ids``, ``token_type_ids`` (all 0: single texts), ``attention_mask``."""
        batch = self.encode_batch(texts, max_length=max_length)
        return {"input_ids": batch.input_ids, "token_type_ids": torch.zeros_like(batch.input_ids),
                "attention_mask": batch.attention_mask}

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        """Ids → text: join pieces, glue ``##`` continuations to the previous piece."""
        out = []
        for i in ids:
            if not 0 <= int(i) < len(self):
                raise ValueError(f"token id {int(i)} is outside the vocabulary [0, {len(self)})")
            tok = self.id_to_token[int(i)]
            if skip_special_tokens and tok in self.specials and tok != self.unk_token:
                continue
            if tok.startswith("##") and out:
                out[-1] += tok[2:]
            else:
                out.append(tok)
        return " ".join(out)
