"""A text browser over a local web of pages: the environment WebGPT's model acts in.

WebGPT (Nakano et al. 2021, §2 and Table 1) let a model answer questions by issuing browser
commands — ``Search``, ``Clicked on link``, ``Quote``, ``Scrolled down``, ``Back``, ``End: Answer``
— and seeing a text rendering of the page after each one. The answer is written from the quotes
it collected, so every claim can be traced to a page. Here the "web" is the Python documentation
that ships with Python (no network): the language-reference topics of ``pydoc_data`` and the
standard library's docstrings, linked the way their own text links them:

- a topic links to its related topics (``pydoc.Helper.topics``/``keywords``, the "Related help
  topics" of ``help()``);
- a module page links to its members and a member to its module and class;
- any page links to another page whose dotted name it mentions (``json.loads`` in ``json.dumps``).

:class:`TextBrowser` renders one window of ``window`` lines with numbered links and keeps the
history for ``back``; :meth:`TextBrowser.execute` parses one command line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

COMMANDS = ("search", "click", "scroll", "find", "quote", "back", "answer")
QUOTE_CHARS = 160      # longest quotable span the grammar offers (a sentence, cut at a word)
FIND_WORDS = 200       # words of the page ``find:`` may look for (the grammar offers only words that are there)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_DOTTED = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+\b")


@dataclass(frozen=True)
class Page:
    """One page of the local web: id (dotted name or ``topic:NAME``), title, text and the ids it links to."""
    id: str
    title: str
    text: str
    links: tuple[str, ...] = ()


@dataclass(frozen=True)
class Quote:
    """A span the model quoted (WebGPT's ``Quote`` command): the page it came from and the exact text."""
    page_id: str
    text: str


def normalize_space(text: str) -> str:
    """``text`` with every run of whitespace collapsed to one space (how quotes are matched to pages)."""
    return " ".join(text.split())


class LocalWeb:
    """Pages by id. Build one from documents (``.id``, ``.text``, optional ``.title``) with :meth:`from_documents`."""

    def __init__(self, pages: dict[str, Page]):
        if not pages:
            raise ValueError("a LocalWeb needs at least one page")
        self.pages = pages

    def __len__(self) -> int:
        return len(self.pages)

    def __getitem__(self, page_id: str) -> Page:
        if page_id not in self.pages:
            raise KeyError(f"no page {page_id!r} in this web")
        return self.pages[page_id]

    @classmethod
    def from_documents(cls, docs, extra_links: dict[str, list[str]] | None = None) -> LocalWeb:
        """Pages from documents; links: ``extra_links``, parent/child dotted names, dotted names in the text."""
        docs = list(docs)
        ids = {d.id for d in docs}
        if len(ids) != len(docs):
            raise ValueError("document ids must be unique")
        children: dict[str, list[str]] = {}
        for d in docs:
            if "." in d.id and not d.id.startswith("topic:"):
                children.setdefault(d.id.rsplit(".", 1)[0], []).append(d.id)
        pages = {}
        for d in docs:
            if not isinstance(d.text, str) or not d.text.strip():
                raise ValueError(f"document {d.id!r} has no text")
            links = list((extra_links or {}).get(d.id, []))
            if "." in d.id and not d.id.startswith("topic:"):
                links.append(d.id.rsplit(".", 1)[0])
            links += sorted(children.get(d.id, []))
            links += [m for m in _DOTTED.findall(d.text) if m in ids]
            seen = dict.fromkeys(x for x in links if x in ids and x != d.id)
            title = getattr(d, "title", None) or d.id
            pages[d.id] = Page(d.id, title, d.text, tuple(seen))
        return cls(pages)


def python_topic_links() -> dict[str, list[str]]:
    """``topic:<key>`` -> related ``topic:<key>`` pages, from ``help()``'s own cross-references."""
    import pydoc

    helper = pydoc.Helper
    table = {**helper.topics, **{k: v for k, v in helper.keywords.items() if v}}

    def keys(name: str) -> list[str]:
        entry = table.get(name)
        while isinstance(entry, str) and entry in table:   # an alias such as "elif" -> "if"
            entry = table[entry]
        if entry is None:
            return [name] if name.islower() else []    # a module named in "Related help topics"
        if isinstance(entry, str):
            return [f"topic:{k}" for k in entry.split()]
        return [f"topic:{k}" for k in entry[0].split()]

    links: dict[str, list[str]] = {}
    for name, entry in table.items():
        if not isinstance(entry, tuple) or len(entry) < 2:
            continue
        related = [k for other in entry[1].split() for k in keys(other)]
        for page in keys(name):
            links.setdefault(page, []).extend(related)
    return links


@dataclass
class _View:
    page: Page | None       # None: a search-result page
    lines: list[str]
    links: list[str]        # page ids, numbered in the rendering
    title: str
    top: int = 0


@dataclass
class TextBrowser:
    """A stateful text browser. Every command returns the observation the model sees next."""

    web: LocalWeb
    search_engine: object          # anything with .search(query, k) -> hits with .doc_id (or .id)
    window: int = 20               # lines shown at once
    results: int = 5               # hits per search
    history: list[_View] = field(default_factory=list)
    quotes: list[Quote] = field(default_factory=list)
    answer_text: str | None = None

    @property
    def view(self) -> _View | None:
        return self.history[-1] if self.history else None

    def render(self) -> str:
        view = self.view
        if view is None:
            return "No page open. Start with search: <query>."
        shown = view.lines[view.top:view.top + self.window]
        where = f"lines {view.top + 1}-{view.top + len(shown)} of {len(view.lines)}"
        links = [f"[{i}] {self.web[p].title}" for i, p in enumerate(view.links)]
        return "\n".join([f"== {view.title} ({where}) ==", *shown, "Links: " + ("; ".join(links) or "none")])

    def quotable(self) -> list[str]:
        """The sentences of the visible window (each cut to ``QUOTE_CHARS`` at a word): spans ``quote:`` accepts."""
        view = self.view
        if view is None or view.page is None:
            return []
        shown = normalize_space(" ".join(view.lines[view.top:view.top + self.window]))
        out = []
        for sentence in _SENTENCE_END.split(shown):
            if len(sentence) > QUOTE_CHARS:
                sentence = sentence[:QUOTE_CHARS].rsplit(" ", 1)[0]
            if len(sentence) >= 3:
                out.append(sentence)
        return list(dict.fromkeys(out))

    def allowed(self, answer_only: bool = False) -> dict:
        """What the browser accepts now, as a command spec: name -> None (any line), () (no argument) or choices.

        The spec of :mod:`course_lib.constrained.webgpt_commands`; ``answer_only`` leaves only ``answer``
        (the last step of an episode).
        """
        if answer_only:
            return {"answer": None}
        view = self.view
        spec: dict = {"search": None}
        if view is not None:
            spec["click"] = [str(i) for i in range(len(view.links))]
            spec["scroll"] = ["down", "up"]
            words = re.findall(r"[A-Za-z_][A-Za-z0-9_]{2,}", "\n".join(view.lines))
            spec["find"] = list(dict.fromkeys(words))[:FIND_WORDS]
            spec["quote"] = self.quotable()
        if len(self.history) >= 2:
            spec["back"] = ()
        spec["answer"] = None
        return spec

    def search(self, query: str) -> str:
        if not isinstance(query, str) or not query.strip():
            raise ValueError("search needs a non-empty query")
        hits = self.search_engine.search(query, self.results * 4)
        page_ids = list(dict.fromkeys(getattr(h, "doc_id", None) or h.id for h in hits))
        page_ids = [p for p in page_ids if p in self.web.pages][:self.results]
        lines = [f"[{i}] {self.web[p].title}: {normalize_space(self.web[p].text)[:100]}" for i, p in enumerate(page_ids)]
        self.history.append(_View(None, lines or ["(no results)"], page_ids, f"search: {query}"))
        return self.render()

    def click(self, n: int) -> str:
        view = self.view
        if view is None or not 0 <= n < len(view.links):
            count = len(view.links) if view else 0
            raise ValueError(f"no link [{n}] here (links are numbered 0..{count - 1})")
        page = self.web[view.links[n]]
        self.history.append(_View(page, page.text.splitlines() or [""], list(page.links), page.title))
        return self.render()

    def scroll(self, direction: str = "down") -> str:
        if self.view is None or direction not in ("down", "up"):
            raise ValueError("scroll needs an open page and direction 'down' or 'up'")
        step = self.window if direction == "down" else -self.window
        self.view.top = min(max(0, self.view.top + step), max(0, len(self.view.lines) - 1))
        return self.render()

    def find(self, text: str) -> str:
        view = self.view
        hit = next((i for i, line in enumerate(view.lines) if text.lower() in line.lower()), None) if view else None
        if hit is None:
            raise ValueError(f"{text!r} is not on this page")
        view.top = hit
        return self.render()

    def quote(self, text: str) -> str:
        """Keep an exact span of the open page (whitespace-insensitive) as evidence for the answer."""
        view = self.view
        if view is None or view.page is None:
            raise ValueError("quote needs an open page (search results cannot be quoted)")
        if not text.strip() or normalize_space(text) not in normalize_space(view.page.text):
            raise ValueError("that text is not on this page; quote an exact span of it")
        self.quotes.append(Quote(view.page.id, normalize_space(text)))
        return f"Quote {len(self.quotes)} saved from {view.page.title}."

    def back(self) -> str:
        if len(self.history) < 2:
            raise ValueError("nothing to go back to")
        self.history.pop()
        return self.render()

    def answer(self, text: str) -> str:
        if not text.strip():
            raise ValueError("answer needs text")
        self.answer_text = text.strip()
        return "Answer recorded."

    def execute(self, line: str) -> str:
        """Run one command such as ``search: json indent`` or ``click: 2``; errors come back as text."""
        name, _, arg = line.strip().partition(":")
        name, arg = name.strip().lower(), arg.strip()
        try:
            if name not in COMMANDS:
                raise ValueError(f"unknown command {name!r}; use one of {', '.join(COMMANDS)}")
            if name == "click":
                if not arg.lstrip("[").rstrip("]").isdigit():
                    raise ValueError(f"click needs a link number, got {arg!r}")
                return self.click(int(arg.lstrip("[").rstrip("]")))
            if name == "back":
                return self.back()
            if name == "scroll":
                return self.scroll(arg or "down")
            return getattr(self, name)(arg)
        except ValueError as err:
            return f"Error: {err}"
