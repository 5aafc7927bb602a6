"""Chunking: cut documents into passages that fit the embedding model (MiniLM reads ≤ 256 tokens).

Two strategies, both counted in MiniLM's own WordPiece tokens, ``[CLS]`` and ``[SEP]`` included:

- :func:`fixed_chunks`: windows of ``size`` tokens that overlap by ``overlap`` tokens (the common
  baseline; a window may cut a sentence or a code example in half);
- :func:`structured_chunks`: split at structure first — headings, blank-line paragraphs, code blocks
  (fenced ```` ``` ````, indented, or ``>>>`` examples) kept whole — then pack consecutive blocks
  greedily under the limit; a heading starts a new chunk. A single block longer than the limit falls
  back to fixed windows.

Windows move over whitespace-separated words: BERT's tokenizer splits on whitespace before anything
else, so a word's WordPiece count is the same alone or in context and a chunk's text is a verbatim
slice of the document.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from course_lib import weights
from course_lib.rag.documents import Document, check_documents
from course_lib.tokenizers.wordpiece import WordPieceTokenizer

MAX_TOKENS = 256   # all-MiniLM-L6-v2's max_seq_length
_WORD = re.compile(r"\S+")
_HEADING = re.compile(r"^(#{1,6} |\*{3,}|={3,}|-{3,}|\S.*\n[=*~^-]{3,}\s*$)")


@dataclass(frozen=True)
class Chunk:
    """A piece of one document cut to fit MiniLM's window: chunk id, document id, title, text, token count."""
    id: str        # f"{doc_id}#{i}"
    doc_id: str
    title: str
    text: str
    n_tokens: int  # MiniLM tokens including [CLS] and [SEP]


@lru_cache(maxsize=1)
def minilm_tokenizer() -> WordPieceTokenizer:
    """MiniLM's WordPiece tokenizer (no model weights loaded)."""
    return WordPieceTokenizer.from_pretrained(weights.minilm_path())


def count_tokens(text: str) -> int:
    """MiniLM tokens of ``text`` including ``[CLS]`` and ``[SEP]``."""
    return len(minilm_tokenizer().tokenize(text)) + 2


def _check_sizes(size: int, overlap: int) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or not 3 <= size <= MAX_TOKENS:
        raise ValueError(f"size must be an int in [3, {MAX_TOKENS}] (tokens incl. [CLS]/[SEP]), got {size!r}")
    if isinstance(overlap, bool) or not isinstance(overlap, int) or not 0 <= overlap < size - 2:
        raise ValueError(f"overlap must be an int in [0, size - 2), got {overlap!r}")


def _windows(text: str, size: int, overlap: int) -> list[str]:
    """Verbatim slices of ``text`` of ≤ ``size`` tokens, consecutive ones sharing ≥ ``overlap`` tokens."""
    tok = minilm_tokenizer()
    words = [(m.start(), m.end(), len(tok.tokenize(m.group()))) for m in _WORD.finditer(text)]
    budget, out, start = size - 2, [], 0
    while start < len(words):
        end, used = start, 0
        while end < len(words) and used + words[end][2] <= budget:
            used += words[end][2]
            end += 1
        if end == start:        # one word longer than the window: keep its first tokens' worth of text
            s, e, n = words[start]
            out.append(text[s:s + max(1, (e - s) * budget // n)])
            start += 1
            continue
        out.append(text[words[start][0]:words[end - 1][1]])
        if end == len(words):
            break
        back, shared = end, 0   # step back over ``overlap`` tokens, always moving forward
        while back - 1 > start and shared + words[back - 1][2] <= overlap:
            back -= 1
            shared += words[back][2]
        start = back
    return out


def fixed_chunks(docs: Iterable[Document], size: int = MAX_TOKENS, overlap: int = 32) -> list[Chunk]:
    """Fixed windows of ``size`` tokens (incl. ``[CLS]``/``[SEP]``) overlapping by ``overlap`` tokens."""
    _check_sizes(size, overlap)
    return [Chunk(f"{d.id}#{i}", d.id, d.title, t, count_tokens(t))
            for d in check_documents(docs) for i, t in enumerate(_windows(d.text, size, overlap))]


def _is_code(paragraph: str) -> bool:
    return paragraph[:1].isspace() or paragraph.startswith((">>>", "```"))


def blocks(text: str) -> list[str]:
    """Structural blocks: paragraphs split at blank lines; code (fenced, indented, ``>>>``) kept whole.

    Consecutive code paragraphs (an indented example with blank lines inside) and everything between
    two ```` ``` ```` fences form one block.
    """
    out: list[str] = []
    code: list[bool] = []
    fenced = False
    for p in re.split(r"\n[ \t]*\n", text):
        p = p.strip("\n")
        if not p.strip():
            continue
        if out and (fenced or (_is_code(p) and code[-1] and not p.startswith("```"))):
            out[-1] += "\n\n" + p
        else:
            out.append(p)
            code.append(_is_code(p))
        if p.count("```") % 2:
            fenced = not fenced
    return out


def is_heading(block: str) -> bool:
    """Markdown ``#`` headings and reStructuredText underlined titles."""
    return bool(_HEADING.match(block)) and block.count("\n") <= 1


def structured_chunks(docs: Iterable[Document], size: int = MAX_TOKENS, overlap: int = 32) -> list[Chunk]:
    """Structure-aware chunks: whole blocks packed greedily under ``size`` tokens, a new chunk at each heading."""
    _check_sizes(size, overlap)
    chunks = []
    for d in check_documents(docs):
        texts: list[str] = []
        cur: list[str] = []
        used = 2
        for block in blocks(d.text):
            n = count_tokens(block) - 2
            if cur and (is_heading(block) or used + n > size):
                texts.append("\n\n".join(cur))
                cur, used = [], 2
            if n + 2 > size:                      # a block that cannot fit anywhere: fixed windows
                texts.extend(_windows(block, size, overlap))
                continue
            cur.append(block)
            used += n
        if cur:
            texts.append("\n\n".join(cur))
        chunks += [Chunk(f"{d.id}#{i}", d.id, d.title, t, count_tokens(t)) for i, t in enumerate(texts)]
    return chunks
