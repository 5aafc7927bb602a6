"""WebGPT's tasks on the Python-docs web, and the scripted expert whose episodes are the demonstrations.

Tasks are the answerable questions of chapter 09's question set (:func:`course_lib.rag.load_questions`),
with its dev/test split: ``dev`` for demonstrations, in-context examples and tuning, ``test`` held out for
the success table. A task's gold pages are the question's passages.

WebGPT's behaviour cloning (Nakano et al. 2021, §3.1) fine-tunes on human demonstrations recorded in the
browsing environment itself. Here the demonstrator is :class:`ExpertPolicy`, a chat model that knows the
gold pages and the reference answer and drives the real :class:`~course_lib.webgpt.browser.TextBrowser`:

1. ``search: <the question>``;
2. ``click: <n>`` on the first gold page among the results; if none is listed, ``search: <the gold page's
   title>`` once, then click (or the top result when even that fails, and from there a link to a gold page);
3. ``quote: <sentence>``: of the visible sentences (:meth:`TextBrowser.quotable`), the one sharing most
   content words with the reference answer;
4. ``answer: <page title>: <the quote>``: an extractive answer, supported by its quote by construction.

:func:`demonstrations` records each step's request and reply in the episode's own format (system prompt, state
summary, one command), one chat per step, and refuses test tasks.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from types import SimpleNamespace

from course_lib.chat import ChatReply
from course_lib.webgpt.browser import LocalWeb, TextBrowser, python_topic_links
from course_lib.webgpt.episode import Episode, content_words, run_episode

WINDOW = 8          # page lines the browser shows at once (keeps each step's prompt short on the CPU)


@dataclass(frozen=True)
class WebTask:
    """One WebGPT question: id, text, reference answer, the pages that answer it, and its split."""
    id: str
    question: str
    answer: str
    gold_pages: tuple[str, ...]
    split: str


def load_tasks(split: str) -> list[WebTask]:
    """The answerable questions of ``split`` ("dev" or "test") as tasks, in file order."""
    from course_lib.rag import load_questions

    if split not in ("dev", "test"):
        raise ValueError(f"split must be 'dev' or 'test', got {split!r}")
    return [WebTask(q.id, q.question, q.answer, q.passages, q.split) for q in load_questions(split) if q.answerable]


@functools.lru_cache(maxsize=1)
def python_docs_web() -> tuple[LocalWeb, object]:
    """The local web (pydoc topics + stdlib docstrings, linked) and a BM25 engine over its pages (built once)."""
    from course_lib import rag

    web = LocalWeb.from_documents(rag.python_topics() + rag.stdlib_docs(), python_topic_links())
    units = [SimpleNamespace(id=p.id, doc_id=p.id, title=p.title, text=p.text) for p in web.pages.values()]
    return web, rag.BM25Retriever(units)


def new_browser(window: int = WINDOW) -> TextBrowser:
    """A fresh browser on :func:`python_docs_web`."""
    web, engine = python_docs_web()
    return TextBrowser(web, engine, window=window)


class ExpertPolicy:
    """A chat model that browses like the module docstring's expert; it reads ``browser``, not the prompt.

    ``requests`` and ``replies`` record every call, so an episode doubles as demonstrations.
    """

    def __init__(self, task: WebTask, browser: TextBrowser):
        self.task, self.browser, self.name = task, browser, "expert"
        self.requests: list[list[dict]] = []
        self.replies: list[str] = []
        self._searched_title = False

    def next_command(self) -> str:
        """The expert's command for the browser's current state."""
        b, task = self.browser, self.task
        view = b.view
        if view is None:
            return f"search: {task.question}"
        if view.page is None:                                   # a result page
            gold = [i for i, page_id in enumerate(view.links) if page_id in task.gold_pages]
            if gold:
                return f"click: {gold[0]}"
            if not self._searched_title:
                self._searched_title = True
                return f"search: {b.web[task.gold_pages[0]].title}"
            return "click: 0" if view.links else f"answer: {task.answer}"
        linked = [i for i, page_id in enumerate(view.links) if page_id in task.gold_pages]
        if not b.quotes and view.page.id not in task.gold_pages and linked:
            return f"click: {linked[0]}"                        # the gold page is one link away
        if not b.quotes:
            wanted = set(content_words(task.answer))
            sentences = b.quotable()
            if sentences:
                best = max(sentences, key=lambda s: (len(wanted & set(content_words(s))), -sentences.index(s)))
                return f"quote: {best}"
        if b.quotes:
            return f"answer: {b.web[b.quotes[-1].page_id].title}: {b.quotes[-1].text}"
        return f"answer: {task.answer}"

    def chat(self, messages, **kwargs) -> ChatReply:
        """The next command as a reply (usage counts are zero: no model ran)."""
        command = self.next_command()
        self.requests.append([dict(m) for m in messages])
        self.replies.append(command)
        return ChatReply(command, (), "stop", {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0})


def expert_episode(task: WebTask, max_steps: int = 6, window: int = WINDOW) -> tuple[Episode, ExpertPolicy]:
    """The expert's episode on ``task`` in a fresh browser, and the policy (its recorded requests)."""
    browser = new_browser(window)
    expert = ExpertPolicy(task, browser)
    return run_episode(expert, browser, task.question, max_steps=max_steps), expert


def demonstrations(tasks: list[WebTask], max_steps: int = 6, window: int = WINDOW) -> list[list[dict]]:
    """One chat ``[system, user (state), assistant (command)]`` per expert step, over dev ``tasks`` only."""
    held_out = [t.id for t in tasks if t.split != "dev"]
    if held_out:
        raise ValueError(f"demonstrations come from the dev split only; got non-dev tasks {held_out[:5]}")
    chats = []
    for task in tasks:
        _, expert = expert_episode(task, max_steps, window)
        chats += [request + [{"role": "assistant", "content": reply}]
                  for request, reply in zip(expert.requests, expert.replies)]
    return chats
