"""Test doubles shared by the tests/test_chains*.py files: a prompt, a word-by-word model, a tiny retriever."""

from __future__ import annotations

from dataclasses import dataclass

from course_lib.chat import ScriptedChatModel

PROMPT = [("system", "You are a {style} assistant."), ("human", "Question: {question}")]
INPUT = {"style": "terse", "question": "What is 2 + 2?"}


class PiecewiseModel(ScriptedChatModel):
    """Scripted replies streamed word by word; ``events`` records when each piece leaves the model."""

    def __init__(self, replies, events=None):
        super().__init__(replies)
        self.events = events if events is not None else []

    def stream(self, messages, **kwargs):
        for i, word in enumerate(self.chat(messages, **kwargs).content.split(" ")):
            self.events.append(f"model {i}")
            yield word if i == 0 else " " + word


@dataclass(frozen=True)
class Passage:  # the course retriever interface's passage (course_lib.rag.types.Passage)
    id: str
    doc_id: str
    title: str
    text: str
    score: float


class TinyRetriever:
    """A stand-in retriever: ranks documents by the number of query words they contain."""

    def __init__(self, docs):
        self.docs, self.calls = docs, []

    def search(self, query, k=10):
        self.calls.append((query, k))
        words = set(query.lower().split())
        scored = [(sum(w in text.lower() for w in words), i) for i, (title, text) in enumerate(self.docs)]
        scored.sort(key=lambda s: (-s[0], s[1]))
        return [Passage(f"d{i}#0", f"d{i}", self.docs[i][0], self.docs[i][1], float(s)) for s, i in scored[:k]]


DOCS = [("Paris", "Paris is the capital of France."), ("Rust", "Rust is a systems programming language."),
        ("Berlin", "Berlin is the capital of Germany.")]
