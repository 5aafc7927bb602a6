"""Grounded answers: numbered sources in the prompt, ``[n]`` citations, a citation check and refusal.

The generator sees the top-k passages numbered ``[1] … [k]`` and is told to answer from them only
and to cite them (Lewis et al. 2020 retrieve-then-generate; citation format as in Gao et al. 2023,
ALCE). Two guards sit around the model:

- **refusal**: when the retriever's best score is below a threshold (chosen on the question set's
  dev split), nothing relevant was found and the pipeline says so instead of generating;
- **citation check**: every cited number must exist, and the cited passage must contain the
  content words of the sentence that cites it (a cheap lexical proxy for "the source supports it").

A 135M model told to cite "like [1]" rarely writes a citation at all. :class:`~course_lib.constrained.CiteFirst` makes the
format one it can follow: a logits processor (the hook constrained decoding uses, chapter 10) that
opens the reply with ``[``, lets the model choose only among the source numbers, closes the bracket,
and then lets it write freely. Which source it names, and whether the words after it come from that
source, stay the model's; the citation check still judges them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field


from course_lib.constrained.cite_first import CiteFirst
from course_lib.rag.bm25 import tokenize
from course_lib.rag.llm import complete, stream_chat
from course_lib.rag.types import Passage, Retriever, check_k, check_query

SYSTEM = ("You answer questions about Python using only the numbered sources. After each sentence, cite the "
          "sources it uses by their number in brackets, like [1]. If the sources do not answer the question, "
          "say you don't know.")
REFUSAL = "I don't know: the sources I found do not cover this question."
_CITE = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


def sources_block(passages: Sequence[Passage], tokenizer, max_tokens: int = 160) -> str:
    """``[1] title\\ntext`` blocks, each passage cut to ``max_tokens`` generator tokens."""
    parts = []
    for n, p in enumerate(passages, start=1):
        text = tokenizer.decode(tokenizer.encode_ordinary(p.text)[:max_tokens])
        parts.append(f"[{n}] {p.title}\n{text}")
    return "\n\n".join(parts)


def grounded_messages(question: str, passages: Sequence[Passage], tokenizer, max_tokens: int = 160) -> list[dict]:
    """Chat messages: the citing rules (system), then the numbered sources and the question (user)."""
    user = f"Sources:\n\n{sources_block(passages, tokenizer, max_tokens)}\n\nQuestion: {check_query(question)}"
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def cited_numbers(text: str) -> list[int]:
    """Source numbers cited in ``text`` (``[2]``, ``[1, 3]``), in order of first citation."""
    return list(dict.fromkeys(int(n) for m in _CITE.finditer(text) for n in m.group(1).split(",")))


@dataclass(frozen=True)
class CitationCheck:
    """The verdict of :func:`check_citations`: ok, cited source numbers, invalid ones and unsupported sentences."""
    ok: bool
    cited: list[int]
    invalid: list[int]                     # cited numbers with no such source
    unsupported: list[tuple[int, str]]     # (source number, citing sentence) lacking support
    support: dict[int, float] = field(default_factory=dict)   # lowest word overlap per cited source


def check_citations(answer: str, sources: Sequence[Passage | str], min_overlap: float = 0.5) -> CitationCheck:
    """Every ``[n]`` names a source, and source n holds ≥ ``min_overlap`` of its sentence's content words.

    An answer that cites nothing fails (``ok=False``). Content words: :func:`~course_lib.rag.bm25.tokenize`
    without stop words, numbers and words shorter than 3 letters.
    """
    if not isinstance(answer, str):
        raise TypeError(f"answer must be a str, got {type(answer).__name__}")
    if not 0 <= min_overlap <= 1:
        raise ValueError(f"min_overlap must be in [0, 1], got {min_overlap!r}")
    texts = [s.text if isinstance(s, Passage) else s for s in sources]
    vocab = [set(tokenize(t)) for t in texts]
    cited = cited_numbers(answer)
    invalid = [n for n in cited if not 1 <= n <= len(texts)]
    unsupported, support = [], {}
    for sentence in _SENTENCE.split(answer):
        numbers = [n for n in cited_numbers(sentence) if 1 <= n <= len(texts)]
        words = {w for w in tokenize(_CITE.sub(" ", sentence)) if len(w) >= 3 and not w.isdigit()}
        for n in numbers:
            share = len(words & vocab[n - 1]) / len(words) if words else 1.0
            support[n] = min(share, support.get(n, 1.0))
            if share < min_overlap:
                unsupported.append((n, sentence.strip()))
    return CitationCheck(bool(cited) and not invalid and not unsupported, cited, invalid, unsupported, support)


@dataclass
class Answer:
    """One RAG answer: question, text, retrieved passages, whether it refused, citation check and timings."""
    question: str
    text: str
    passages: list[Passage]
    refused: bool
    citations: CitationCheck | None
    seconds: dict[str, float]              # "retrieve", "generate"
    new_tokens: int = 0


class RAG:
    """Retrieve ``k`` passages, refuse below ``threshold``, else answer from them with citations."""

    def __init__(self, retriever: Retriever, model=None, tokenizer=None, k: int = 3, threshold: float | None = None,
                 max_new_tokens: int = 128, max_passage_tokens: int = 160, cite_first: bool = True):
        from course_lib import pretrained

        self.retriever, self.k, self.threshold = retriever, check_k(k), threshold
        self.model = pretrained.smollm2() if model is None else model
        self.tokenizer = pretrained.smollm2_tokenizer() if tokenizer is None else tokenizer
        self.max_new_tokens, self.max_passage_tokens = check_k(max_new_tokens), check_k(max_passage_tokens)
        self.cite_first = bool(cite_first)

    def retrieve(self, question: str) -> tuple[list[Passage], bool, float]:
        """Passages, whether to refuse (best score below the threshold, or nothing found), seconds."""
        start = time.perf_counter()
        passages = self.retriever.search(check_query(question), self.k)
        refuse = not passages or (self.threshold is not None and passages[0].score < self.threshold)
        return passages, refuse, time.perf_counter() - start

    def answer(self, question: str) -> Answer:
        passages, refuse, t_retrieve = self.retrieve(question)
        if refuse:
            return Answer(question, REFUSAL, passages, True, None, {"retrieve": t_retrieve, "generate": 0.0})
        out = complete(self.model, self.tokenizer, self.messages(question, passages), self.max_new_tokens,
                       self.constraint(passages))
        return Answer(question, out.text, passages, False, check_citations(out.text, passages),
                      {"retrieve": t_retrieve, "generate": out.seconds}, out.new_tokens)

    def messages(self, question: str, passages: Sequence[Passage]) -> list[dict]:
        return grounded_messages(question, passages, self.tokenizer, self.max_passage_tokens)

    def stream(self, question: str) -> Iterator[str]:
        """The answer as text pieces while it is generated (the refusal in one piece)."""
        passages, refuse, _ = self.retrieve(question)
        if refuse:
            yield REFUSAL
            return
        yield from stream_chat(self.model, self.tokenizer, self.messages(question, passages), self.max_new_tokens,
                               self.constraint(passages))

    def constraint(self, passages: Sequence[Passage]):
        """``LocalChatModel``'s per-reply hook: a fresh :class:`CiteFirst` over the sources (``None``: free text)."""
        if not self.cite_first:
            return None
        return lambda messages, tools: CiteFirst(self.tokenizer, len(passages))
