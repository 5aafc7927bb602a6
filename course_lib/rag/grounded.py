"""A grounded answerer for small models: select the supporting sentences first, cite them, then compose.

A 135M generator asked to answer from sources and cite them writes fluent text whose words often do
not come from the source it names (chapter 09 measures it). This answerer moves the model-free part
first, as in extract-then-cite pipelines (ALCE's "summarise / snippet" baselines, Gao et al. 2023 §4;
sentence-level attribution, Rashkin et al. 2023):

1. **retrieve** ``k`` passages with any :class:`~course_lib.rag.types.Retriever`;
2. **select**: split the passages into sentences and score each by the idf-weighted share of the
   question's content words it holds (its passage title counts: ``json.dumps`` names the function),
   ties going to the better-ranked passage;
3. **refuse** a question that is not in English (the corpus is English), and when the best sentence holds less than ``threshold`` of the question (chosen on the dev
   split with :func:`~course_lib.rag.evaluate.choose_threshold`), or when no question word occurs in the
   sources at all (a question in another language than the corpus, a question about something else);
4. **compose**: the chosen sentences, each prefixed by its source's title and followed by ``[n]``.

Every sentence of the answer is a quote of the source it cites, so its citation holds by construction;
what the answer score measures is whether retrieval and selection found the right sentence.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from course_lib.rag.answer import ENGLISH_ONLY, REFUSAL, Answer, check_citations, check_question, not_english
from course_lib.rag.answer_metrics import CITE, content_words, sentences, words
from course_lib.rag.questions import _forms
from course_lib.rag.types import Passage, Retriever, check_k

_PARAGRAPH = re.compile(r"\n\s*\n")
NO_OVERLAP = "I don't know: no word of the question occurs in the sources I found."


def passage_sentences(text: str, max_words: int = 60) -> list[str]:
    """Prose sentences of a passage: split at sentence ends and blank lines, whitespace collapsed.

    Paragraphs are split with :func:`~course_lib.rag.answer_metrics.sentences`, the metric's own split, so
    each quote is one sentence to the citation check. Kept when they hold ≥ 2 content words and ≤
    ``max_words`` words; heading underlines (``****``), grammar rules (``::=``), interpreter lines
    (``>>>``) and footnote marks (``[4]``) are dropped.
    """
    out = []
    for paragraph in _PARAGRAPH.split(text):
        paragraph = " ".join(CITE.sub(" ", paragraph).split())   # footnote marks like [4] would read as citations
        if not paragraph or "::=" in paragraph or paragraph.startswith(">>>"):
            continue
        for s in sentences(re.sub(r"\s*[*=\-~^]{4,}\s*", " ", paragraph)):   # the metric's own sentence split
            if len(content_words(s)) >= 2 and len(s.split()) <= max_words:
                out.append(s)
    return out


@dataclass(frozen=True)
class Selected:
    """One candidate sentence: the source number it comes from (1-based), its text and its score."""
    source: int
    sentence: str
    score: float        # share + priors: what the selection sorts by
    share: float        # idf-weighted share of the question's content words the sentence (and title) holds


class GroundedRAG:
    """Retrieve, select supporting sentences, refuse or quote them with ``[n]`` citations.

    ``idf``: ``{word: weight}`` for the question's words (e.g. :meth:`idf_from` a BM25 retriever); unknown
    words weigh the largest idf, words missing from ``idf`` entirely weigh 1 when ``idf`` is None.
    """

    def __init__(self, retriever: Retriever, k: int = 3, threshold: float = 0.0, n_sentences: int = 2,
                 second_ratio: float = 0.6, idf: dict[str, float] | None = None, rank_weight: float = 0.1,
                 lead_weight: float = 0.1):
        if not 0 <= threshold <= 1:
            raise ValueError(f"threshold must be in [0, 1], got {threshold!r}")
        if not 0 <= second_ratio <= 1:
            raise ValueError(f"second_ratio must be in [0, 1], got {second_ratio!r}")
        self.retriever, self.k, self.threshold = retriever, check_k(k), float(threshold)
        self.n_sentences, self.second_ratio, self.idf = check_k(n_sentences), float(second_ratio), idf
        self.rank_weight, self.lead_weight = float(rank_weight), float(lead_weight)

    @staticmethod
    def idf_from(bm25) -> dict[str, float]:
        """``{word: idf}`` of a :class:`~course_lib.rag.bm25.BM25Retriever`'s index, floored at 0.1."""
        index = bm25.index
        return {w: max(float(index.idf[i]), 0.1) for w, i in index.vocab.items()}

    def weight(self, word: str) -> float:
        """How much a question word counts: its idf (the corpus' largest for an unseen word), or 1 without ``idf``."""
        if self.idf is None:
            return 1.0
        return self.idf.get(word, max(self.idf.values(), default=1.0))

    def select(self, question: str, passages: Sequence[Passage]) -> list[Selected]:
        """Every sentence of ``passages``, best first: share of the question's weight it covers."""
        asked = content_words(question)
        total = sum(self.weight(w) for w in asked)
        out = []
        for n, p in enumerate(passages, start=1):
            title = words(p.title.replace(".", " ").replace("_", " ")) | words(p.title)
            for i, s in enumerate(passage_sentences(p.text)):
                have = words(s) | title
                got = sum(self.weight(w) for w in asked if _forms(w) & have)
                share = got / total if total else 0.0
                prior = self.rank_weight / n + self.lead_weight * (i == 0) if share else 0.0
                out.append(Selected(n, s, share + prior, share))
        out.sort(key=lambda c: (-c.score, c.source))          # stable: earlier sentences first on ties
        return out

    def compose(self, chosen: Sequence[Selected], passages: Sequence[Passage]) -> str:
        """``"title: sentence [n]"`` for each chosen sentence, one per line."""
        return "\n".join(f"{passages[c.source - 1].title}: {c.sentence} [{c.source}]" for c in chosen)

    def answer(self, question: str) -> Answer:
        """The grounded answer to ``question`` (a refusal when the sources do not hold it); bad input raises."""
        if not_english(check_question(question)):
            return Answer(question, ENGLISH_ONLY, [], True, None, {"retrieve": 0.0, "select": 0.0})
        start = time.perf_counter()
        passages = self.retriever.search(question, self.k)
        t_retrieve = time.perf_counter() - start
        start = time.perf_counter()
        ranked = self.select(question, passages)
        seconds = lambda: {"retrieve": t_retrieve, "select": time.perf_counter() - start}   # noqa: E731
        if not ranked or ranked[0].score == 0:
            return Answer(question, NO_OVERLAP, passages, True, None, seconds())
        if max(c.share for c in ranked) < self.threshold:
            return Answer(question, REFUSAL, passages, True, None, seconds())
        chosen = [ranked[0]] + [c for c in ranked[1:self.n_sentences]
                                if c.score >= self.second_ratio * ranked[0].score and not math.isclose(c.score, 0)]
        text = self.compose(chosen, passages)
        return Answer(question, text, list(passages), False, check_citations(text, passages), seconds())
