"""RAG with a generator: numbered sources in the prompt, ``[n]`` citations, a citation check and refusal.

The generator sees the top-k passages numbered ``[1] … [k]`` and is told to answer from them only
and to cite them (Lewis et al. 2020 retrieve-then-generate; citation format as in Gao et al. 2023,
ALCE). SmolLM2 answers through :class:`course_lib.chat.LocalChatModel` (its chat template, greedy
decoding with the KV cache, stop at ``<|im_end|>``). Two guards sit around the model:

- **refusal**: when the retriever's best score is below a threshold (chosen on the question set's
  dev split), nothing relevant was found and the pipeline says so instead of generating;
- **citation check**: ALCE citation recall and precision (:mod:`course_lib.rag.answer_metrics`): every
  factual sentence must cite a source that supports it, and every cited number must exist and support
  its sentence.

A 135M model told to cite "like [1]" rarely writes a citation at all. :class:`~course_lib.constrained.CiteFirst` makes the
format one it can follow: a logits processor (the hook constrained decoding uses, chapter 10) that
opens the reply with ``[``, lets the model choose only among the source numbers, closes the bracket,
and then lets it write freely. Which source it names, and whether the words after it come from that
source, stay the model's; the citation check still judges them. :mod:`course_lib.rag.grounded` is the
answerer that earns the citation numbers: it quotes the supporting sentences instead of writing new ones.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from course_lib.chat import LocalChatModel
from course_lib.constrained.cite_first import CiteFirst
from course_lib.rag.answer_metrics import citation_scores, cited
from course_lib.rag.types import Passage, Retriever, check_k, check_query

SYSTEM = ("You answer questions about Python using only the numbered sources. After each sentence, cite the "
          "sources it uses by their number in brackets, like [1]. If the sources do not answer the question, "
          "say you don't know.")
REFUSAL = "I don't know: the sources I found do not cover this question."
ENGLISH_ONLY = "I can only answer questions in English: my sources are the English Python documentation."
MAX_QUESTION_CHARS = 2000           # a longer "question" is refused with a clear error, not fed to a 2k-token model


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


def check_question(question: object) -> str:
    """A non-empty ``str`` question of at most :data:`MAX_QUESTION_CHARS` characters (``TypeError`` / ``ValueError``)."""
    check_query(question)
    if len(question) > MAX_QUESTION_CHARS:
        raise ValueError(f"question is {len(question):,} characters long; ask in at most {MAX_QUESTION_CHARS:,} "
                         "(paste the relevant part, not a whole file)")
    return question


def not_english(question: str) -> bool:
    """Whether most letters of ``question`` are not ASCII (a question in Chinese, Russian ...)."""
    letters = [c for c in question if c.isalpha()]
    return sum(not c.isascii() for c in letters) > len(letters) / 2


@dataclass(frozen=True)
class CitationCheck:
    """The verdict of :func:`check_citations`: ok, ALCE recall / precision, cited numbers and what failed."""
    ok: bool
    recall: float | None                   # None: no factual sentence
    precision: float | None                # None: no citation
    cited: list[int]
    invalid: list[int]                     # cited numbers with no such source
    uncited: list[str]                     # factual sentences without a citation
    unsupported: list[tuple[int, str]]     # (source number, sentence): a citation that does not support it


def check_citations(answer: str, sources: Sequence[Passage | str]) -> CitationCheck:
    """ok when every factual sentence cites sources that support it and every citation supports its sentence.

    An answer that cites nothing fails; so does one uncited sentence among cited ones (citation recall
    < 1), or one citation of a source that does not hold the sentence's words (citation precision < 1).
    """
    scores = citation_scores(answer, sources)
    numbers = cited(answer)
    invalid = [n for n in numbers if not 1 <= n <= len(sources)]
    ok = bool(numbers) and scores.recall == 1.0 and scores.precision == 1.0
    return CitationCheck(ok, scores.recall, scores.precision, numbers, invalid, scores.uncited, scores.imprecise)


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
        passages = self.retriever.search(check_question(question), self.k)
        refuse = not passages or (self.threshold is not None and passages[0].score < self.threshold)
        return passages, refuse, time.perf_counter() - start

    def answer(self, question: str) -> Answer:
        """Retrieve, then refuse or generate; the reply comes with its citation check and timings."""
        if not_english(check_question(question)):
            return Answer(question, ENGLISH_ONLY, [], True, None, {"retrieve": 0.0, "generate": 0.0})
        passages, refuse, t_retrieve = self.retrieve(question)
        if refuse:
            return Answer(question, REFUSAL, passages, True, None, {"retrieve": t_retrieve, "generate": 0.0})
        start = time.perf_counter()
        reply = self.chat_model(passages).chat(self.messages(question, passages), max_tokens=self.max_new_tokens)
        text = reply.content.strip()
        return Answer(question, text, passages, False, check_citations(text, passages),
                      {"retrieve": t_retrieve, "generate": time.perf_counter() - start},
                      reply.usage["completion_tokens"])

    def chat_model(self, passages: Sequence[Passage]) -> LocalChatModel:
        """SmolLM2 behind the chat interface, with a fresh :class:`CiteFirst` per reply unless ``cite_first=False``."""
        return LocalChatModel(self.model, self.tokenizer, constraint=self.constraint(passages))

    def messages(self, question: str, passages: Sequence[Passage]) -> list[dict]:
        """The grounded chat messages for ``question`` over ``passages`` (:func:`grounded_messages`)."""
        return grounded_messages(question, passages, self.tokenizer, self.max_passage_tokens)

    def stream(self, question: str) -> Iterator[str]:
        """The answer as text pieces while it is generated (the refusal in one piece)."""
        passages, refuse, _ = self.retrieve(question)
        if refuse:
            yield REFUSAL
            return
        yield from self.chat_model(passages).stream(self.messages(question, passages), max_tokens=self.max_new_tokens)

    def constraint(self, passages: Sequence[Passage]):
        """``LocalChatModel``'s per-reply hook: a fresh :class:`CiteFirst` over the sources (``None``: free text)."""
        if not self.cite_first:
            return None
        return lambda messages, tools: CiteFirst(self.tokenizer, len(passages))
