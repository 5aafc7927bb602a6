"""Byte-level byte-pair encoding (BPE), the tokenizer of GPT-2, LLaMA 3 and SmolLM2.

Sennrich et al. 2016 (BPE for subwords); Radford et al. 2019, GPT-2 §2.2 (byte-level BPE).

1. Pre-tokenization: split text into "words" with the GPT-2 regex :data:`GPT2_PATTERN` (what
   HF ``tokenizers``' ``ByteLevel(use_regex=True)`` uses, the pre-tokenizer of SmolLM2's GGUF).
2. Byte↔unicode table: every UTF-8 byte becomes one printable character (space -> ``Ġ``), so a
   vocabulary of 256 base symbols covers any text and nothing is ever "unknown".
3. Merges: training repeatedly joins the most frequent adjacent pair (a, b) -> ab; encoding
   applies the learned merges to each word in training order (lowest rank first).
4. Special tokens such as ``<|im_start|>`` are cut out of the text before step 1 and map
   straight to their ids.

A vocabulary may lack some byte symbols: SmolLM2's has no symbol for 21 bytes (15 that never
occur in UTF-8, 0xF1/0xF2 which start code points U+40000–U+BFFFF, and control bytes 0x04, 0x06,
0x13, 0x14, 0x16, 0x1D). Like HF ``tokenizers`` (no unknown token, no byte fallback) such bytes are
dropped, so only text without them survives ``decode(encode(text))``.

Fast path: merge ranks in a dict keyed by the pair, a heap of candidate merges (O(n log n) per
word, :mod:`.bpe_merge`), and a per-word cache, since natural text repeats the same words again and
again. The cache is bounded: at most ``CACHE_LIMIT`` words of at most ``CACHE_MAX_WORD_BYTES`` UTF-8
bytes (longer words rarely repeat; HF ``tokenizers`` caches only words under 256 bytes, ``utils/cache.rs``).

    >>> tok = pretrained.smollm2_tokenizer()   # from course_lib import pretrained
    >>> tok.encode("Hello world")
    [19556, 905]
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from functools import lru_cache

import regex

from course_lib.tokenizers.batch import BatchEncoding, check_texts, pad_batch
from course_lib.tokenizers.bpe_merge import merge_symbols
from course_lib.tokenizers.bpe_train import learn_merges

# GPT-2's pre-tokenizer: contractions, letters, numbers, other symbols (each with an optional
# leading space), whitespace not followed by a non-space, remaining whitespace.
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
# per-word cache entries kept before the cache is cleared (HF tokenizers' DEFAULT_CACHE_CAPACITY):
# ~120 B each for prose, at most ~2.2 kB for a 256-byte word that never merges (~22 MB: the bound on hostile text)
CACHE_LIMIT = 10_000
CACHE_MAX_WORD_BYTES = 256  # longer words (in UTF-8) are not cached, as in HF tokenizers


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's table byte -> printable character (``encoder.py`` ``bytes_to_unicode``).

    Printable Latin-1 bytes map to themselves; the other 68 (control characters, space, ...)
    map to U+0100 onwards in byte order, so space (0x20) becomes ``Ġ`` (U+0120).
    """
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def pre_tokenize(text: str, pattern: str = GPT2_PATTERN) -> list[str]:
    """Split ``text`` into words with ``pattern`` (no special-token handling)."""
    return _compiled(pattern).findall(text)


@lru_cache(maxsize=8)
def _compiled(pattern: str) -> regex.Pattern:
    return regex.compile(pattern)


def _check_text(text: object, name: str = "text") -> str:
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a str, got {type(text).__name__}")
    return text


class ByteLevelBPE:
    """A byte-level BPE tokenizer: vocabulary ``{token: id}``, ordered merges, special tokens.

    ``vocab`` holds tokens in byte-level form (``"Ġthe"``); ``merges`` are pairs in training order
    (rank 0 is applied first); ``special_tokens`` maps literal strings to ids and must be in ``vocab``.
    """

    def __init__(self, vocab: dict[str, int], merges: Sequence[tuple[str, str]],
                 special_tokens: dict[str, int] | None = None, pattern: str = GPT2_PATTERN,
                 pad_token_id: int | None = None):
        if not isinstance(vocab, dict) or not vocab:
            raise TypeError("vocab must be a non-empty dict {token string: id}")
        self.vocab = dict(vocab)
        self.id_to_token = {i: t for t, i in self.vocab.items()}
        self.merges = [tuple(m) for m in merges]
        for a, b in self.merges:
            if a + b not in self.vocab:
                raise ValueError(f"merge ({a!r}, {b!r}) produces {a + b!r}, which is not in vocab")
        self.ranks = {pair: rank for rank, pair in enumerate(self.merges)}  # (a, b) -> rank
        self.special_tokens = dict(special_tokens or {})
        for token, i in self.special_tokens.items():
            if self.vocab.get(token) != i:
                raise ValueError(f"special token {token!r} must be in vocab with id {i}")
        self.pattern = pattern
        self.pad_token_id = pad_token_id  # used by encode_batch; None: pass pad_id there
        self._word_re = _compiled(pattern)
        alternation = "|".join(regex.escape(t) for t in sorted(self.special_tokens, key=len, reverse=True))
        self._special_re = regex.compile(f"({alternation})") if self.special_tokens else None
        # latin-1 char -> byte symbol; bytes without a symbol in vocab are deleted, as HF does (see above)
        self._byte_table = str.maketrans({b: (c if c in self.vocab else None) for b, c in bytes_to_unicode().items()})
        self._char_to_byte = {c: b for b, c in bytes_to_unicode().items()}
        self._cache: dict[str, list[int]] = {}  # raw word -> ids, filled while encoding
        # byte-level words that BPE maps to one vocabulary token (checked once, ~0.3 s for SmolLM2):
        # the most frequent words are such tokens, so a first sight of them skips the merge loop
        self._whole_words = {t: [i] for t, i in self.vocab.items()
                             if t not in self.special_tokens and self.bpe(t) == [t]}

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_gguf_data(cls, data: dict) -> ByteLevelBPE:
        """Build from ``course_lib.weights.smollm2_tokenizer_data()``-style metadata.

        Token ids are list positions; merges are ``"a b"`` strings; token type 3 (control) marks
        special tokens, as in llama.cpp's ``LLAMA_TOKEN_TYPE_CONTROL``.
        """
        if data.get("model") != "gpt2":
            raise ValueError(f"expected a byte-level BPE ('gpt2') tokenizer, got model={data.get('model')!r}")
        tokens = list(data["tokens"])
        vocab = {t: i for i, t in enumerate(tokens)}
        merges = [tuple(m.split(" ", 1)) for m in data["merges"]]
        specials = {tokens[i]: i for i, kind in enumerate(data["token_types"]) if kind == 3}
        return cls(vocab, merges, specials, pad_token_id=data.get("padding_token_id"))

    # ------------------------------------------------------------------ training
    @classmethod
    def train(cls, text: str | Iterable[str], vocab_size: int, special_tokens: Sequence[str] = (),
              pattern: str = GPT2_PATTERN) -> ByteLevelBPE:
        """Learn merges on ``text`` until the vocabulary has ``vocab_size`` entries.

        Ids: special tokens first, then the 256 byte symbols sorted by code point, then one id
        per merge, the layout and tie-breaking of HF ``tokenizers``' ``BpeTrainer`` (most frequent
        pair; ties go to the smallest pair of ids), so both learn the same merges.
        """
        texts = [text] if isinstance(text, str) else list(text)
        for t in texts:
            _check_text(t)
        base = len(special_tokens) + 256
        if not isinstance(vocab_size, int) or vocab_size < base:
            raise ValueError(f"vocab_size must be an int >= {base} (specials + 256 bytes), got {vocab_size!r}")
        id_to_token = list(special_tokens) + sorted(bytes_to_unicode().values())
        vocab = {t: i for i, t in enumerate(id_to_token)}
        table = str.maketrans(bytes_to_unicode())
        counts = Counter(w for t in texts for w in pre_tokenize(t, pattern))
        words = [[vocab[c] for c in w.encode("utf-8").decode("latin-1").translate(table)] for w in counts]
        freqs = list(counts.values())

        merges = learn_merges(words, freqs, id_to_token, vocab, vocab_size)  # extends id_to_token and vocab
        specials = {t: vocab[t] for t in special_tokens}
        return cls(vocab, merges, specials, pattern)

    # ------------------------------------------------------------------ encoding
    @property
    def vocab_size(self) -> int:
        """Number of tokens in the vocabulary."""
        return len(self.vocab)

    def bpe(self, word: str) -> list[str]:
        """Apply the merges to one byte-level word, lowest rank first (leftmost on ties), until none applies.

        O(n log n) in the word's length n with a heap of candidate merges (:mod:`.bpe_merge`,
        as HF ``tokenizers``' ``Word::merge_all``), so a long word without spaces cannot stall encoding.
        """
        return merge_symbols(word, self.ranks)

    def _encode_word(self, word: str) -> list[int]:
        ids = self._cache.get(word)
        if ids is None:
            try:
                raw = word.encode("utf-8")
            except UnicodeEncodeError as err:  # a lone surrogate has no UTF-8 form
                raise ValueError(f"text contains {word!r}, which has no UTF-8 encoding ({err.reason})") from None
            symbols = raw.decode("latin-1").translate(self._byte_table)
            ids = self._whole_words.get(symbols) or [self.vocab[p] for p in self.bpe(symbols)]
            if len(raw) <= CACHE_MAX_WORD_BYTES:
                if len(self._cache) >= CACHE_LIMIT:
                    self._cache.clear()
                self._cache[word] = ids
        return ids

    def encode_ordinary(self, text: str) -> list[int]:
        """Encode ``text`` treating special-token strings as plain text."""
        _check_text(text)
        ids: list[int] = []
        cache, encode_word = self._cache, self._encode_word
        for word in self._word_re.findall(text):
            cached = cache.get(word)
            ids.extend(cached if cached is not None else encode_word(word))
        return ids

    def encode(self, text: str, allow_special: bool = True) -> list[int]:
        """Token ids of ``text``; special tokens in the text map to their ids (like HF's default)."""
        _check_text(text)
        if not allow_special or self._special_re is None:
            return self.encode_ordinary(text)
        ids: list[int] = []
        for i, chunk in enumerate(self._special_re.split(text)):  # odd positions are the specials
            if i % 2:
                ids.append(self.special_tokens[chunk])
            elif chunk:
                ids.extend(self.encode_ordinary(chunk))
        return ids

    # ------------------------------------------------------------------ decoding
    def encode_batch(self, texts: list[str], padding_side: str = "left", pad_id: int | None = None,
                     allow_special: bool = True) -> BatchEncoding:
        """Encode ``texts`` and pad them to one width (left by default, for decoding) → :class:`BatchEncoding`."""
        texts = check_texts(texts)
        pad_id = self.pad_token_id if pad_id is None else pad_id
        if pad_id is None:
            raise ValueError("this tokenizer has no pad_token_id: pass pad_id")
        return pad_batch([self.encode(t, allow_special) for t in texts], pad_id, padding_side)

    def _check_ids(self, ids: Iterable[int]) -> list[int]:
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        ids = list(ids)
        for i in ids:
            if isinstance(i, bool) or not isinstance(i, int):
                raise TypeError(f"ids must be ints, got {type(i).__name__}")
            if i not in self.id_to_token:
                raise ValueError(f"token id {i} is out of range for a vocabulary of {self.vocab_size} tokens")
        return ids

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The raw bytes behind ``ids`` (a partial UTF-8 character stays partial)."""
        to_byte = self._char_to_byte
        out = bytearray()
        for i in self._check_ids(ids):
            token = self.id_to_token[i]
            if token in self.special_tokens:
                out += token.encode("utf-8")
            else:
                out += bytes(to_byte[c] for c in token)
        return bytes(out)

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = False) -> str:
        """Text of ``ids``; invalid UTF-8 (a cut multi-byte character) becomes U+FFFD like HF."""
        ids = self._check_ids(ids)
        if skip_special_tokens:
            special_ids = set(self.special_tokens.values())
            ids = [i for i in ids if i not in special_ids]
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def tokens(self, ids: Iterable[int]) -> list[str]:
        """Byte-level token strings of ``ids`` (``"Ġworld"``), for display."""
        return [self.id_to_token[i] for i in self._check_ids(ids)]

    def token_to_id(self, token: str) -> int:
        """The id of one token string (``KeyError`` if absent)."""
        if token not in self.vocab:
            raise ValueError(f"token {token!r} is not in the vocabulary")
        return self.vocab[token]
