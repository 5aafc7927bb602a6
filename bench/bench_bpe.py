"""Byte-level BPE encoding speed: ours (merge ranks + per-word cache) vs HF ``tokenizers`` and a naive loop.

Normal text (the Python docs) and long pre-tokens without spaces (40k letters, 15k Chinese
characters), where a merge loop that is quadratic in the word's length stalls.
"""

from __future__ import annotations

import random
import string
from functools import lru_cache

from bench.harness import BenchResult, benchmark, interleaved


@lru_cache(maxsize=1)
def _setup():
    from transformers import AutoTokenizer

    from course_lib import pretrained, weights
    from course_lib.data import python_docs_text

    path = weights.smollm2_gguf_path()
    reference = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name).backend_tokenizer
    return pretrained.smollm2_tokenizer(), reference, python_docs_text()


def naive_encode(tok, text: str) -> list[int]:
    """The textbook loop of Karpathy's minbpe ``RegexTokenizer._encode_chunk``, without a cache.

    For every regex chunk: count the adjacent pairs, pick the one with the lowest merge rank,
    merge it everywhere, repeat until no pair has a rank.
    """
    from course_lib.tokenizers.bpe import bytes_to_unicode, pre_tokenize

    table = bytes_to_unicode()
    ids = []
    for chunk in pre_tokenize(text):
        parts = [table[b] for b in chunk.encode("utf-8")]
        while len(parts) >= 2:
            stats = {}
            for pair in zip(parts, parts[1:]):
                stats[pair] = stats.get(pair, 0) + 1
            pair = min(stats, key=lambda p: tok.ranks.get(p, float("inf")))
            if pair not in tok.ranks:
                break
            merged, i = [], 0
            while i < len(parts):
                if i < len(parts) - 1 and (parts[i], parts[i + 1]) == pair:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        ids.extend(tok.vocab[p] for p in parts)
    return ids


def _cold(tok, text):
    tok._cache.clear()  # every run starts with an empty per-word cache
    return tok.encode(text)


@benchmark("bpe: encode vs HF tokenizers")
def encode_vs_hf() -> BenchResult:
    """MB/s encoding the Python docs (465 kB), our cache emptied before every run."""
    tok, reference, text = _setup()
    assert tok.encode(text) == reference.encode(text, add_special_tokens=False).ids
    mb = len(text.encode("utf-8")) / 1e6
    t = interleaved({"ours": lambda: _cold(tok, text), "reference": lambda: reference.encode(text, add_special_tokens=False),
                     "warm": lambda: tok.encode(text)}, rounds=3, warmup=0)
    ours_s, ref_s, warm_s = t["ours"], t["reference"], t["warm"]
    return BenchResult(ours=mb / ours_s, reference=mb / ref_s, unit="MB/s", higher_is_better=True, target=0.25,
                       reference_name="HF tokenizers Tokenizer.encode (Rust, threads pinned by the harness)",
                       notes=f"cold cache; with a warm cache ours is {mb / warm_s:.1f} MB/s",
                       extra={"warm_MB_per_s": mb / warm_s})


@benchmark("bpe: encode vs naive merge loop")
def encode_vs_naive() -> BenchResult:
    """Cached, rank-indexed encoding against the textbook loop without a cache, on the 465 kB of docs."""
    tok, _, text = _setup()
    assert naive_encode(tok, text) == _cold(tok, text)
    t = interleaved({"naive": lambda: naive_encode(tok, text), "ours": lambda: _cold(tok, text),
                     "warm": lambda: tok.encode(text)}, rounds=1, warmup=0)  # the naive loop takes tens of seconds
    naive, ours, warm = t["naive"], t["ours"], t["warm"]
    return BenchResult(ours=ours, reference=naive, unit="s", higher_is_better=False, target=10.0,
                       reference_name="naive merge loop (minbpe _encode_chunk: pair stats + min per merge, no cache)",
                       notes=f"ours starts each run with an empty cache; warm cache: {naive / warm:.0f}x",
                       extra={"warm_ratio": naive / warm})


@lru_cache(maxsize=1)
def _long_words() -> dict[str, str]:
    """Seeded texts that are one pre-token each (no spaces, one character class)."""
    rng = random.Random(0)
    letters = "".join(rng.choice(string.ascii_letters) for _ in range(40_000))
    chinese = "".join(chr(rng.randint(0x4E00, 0x9FA5)) for _ in range(15_000))
    return {"4k letters": letters[:4_000], "40k letters": letters, "15k Chinese characters": chinese}


def _long_word_vs_hf(name: str) -> tuple[float, float]:
    """Median seconds (ours, HF) to encode the long word ``name``; ids checked equal first."""
    tok, reference, _ = _setup()
    text = _long_words()[name]
    hf = lambda: reference.encode(text, add_special_tokens=False)  # noqa: E731
    assert _cold(tok, text) == hf().ids
    t = interleaved({"ours": lambda: _cold(tok, text), "reference": hf}, rounds=3, warmup=1)
    return t["ours"], t["reference"]


@benchmark("bpe: one 40k-letter pre-token vs HF tokenizers")
def long_letters_vs_hf() -> BenchResult:
    """Seconds for 40k random letters without a space, and how the time grows from 4k to 40k letters."""
    ours, ref = _long_word_vs_hf("40k letters")
    ours_4k, ref_4k = _long_word_vs_hf("4k letters")
    return BenchResult(ours=ours, reference=ref, unit="s", higher_is_better=False,
                       reference_name="HF tokenizers Tokenizer.encode (Rust, heap merge, single thread)",
                       notes=f"10x the letters: ours {ours / ours_4k:.0f}x the time, HF {ref / ref_4k:.0f}x "
                             f"(a quadratic merge: ~100x)",
                       extra={"ours_4k_s": ours_4k, "reference_4k_s": ref_4k, "ours_growth_4k_to_40k": ours / ours_4k})


@benchmark("bpe: one 15k-character Chinese pre-token vs HF tokenizers")
def long_chinese_vs_hf() -> BenchResult:
    """Seconds for 15k random CJK characters (45k byte symbols): Chinese text has no spaces."""
    ours, ref = _long_word_vs_hf("15k Chinese characters")
    return BenchResult(ours=ours, reference=ref, unit="s", higher_is_better=False,
                       reference_name="HF tokenizers Tokenizer.encode (Rust, heap merge, single thread)")


@benchmark("bpe: one 4k-letter pre-token vs naive merge loop")
def long_letters_vs_naive() -> BenchResult:
    """Seconds for 4k letters without a space: our heap merge against the textbook loop (O(n²) per word)."""
    tok, _, _ = _setup()
    text = _long_words()["4k letters"]
    assert naive_encode(tok, text) == _cold(tok, text)
    t = interleaved({"naive": lambda: naive_encode(tok, text), "ours": lambda: _cold(tok, text)}, rounds=1, warmup=0)
    return BenchResult(ours=t["ours"], reference=t["naive"], unit="s", higher_is_better=False, target=10.0,
                       reference_name="naive merge loop (minbpe _encode_chunk: pair stats + min per merge)")
