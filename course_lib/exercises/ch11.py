"""Exercises of chapter 11 (WebGPT: a text browser, quoted answers, support checks)."""

from __future__ import annotations

import re
from types import SimpleNamespace

from course_lib.exercises import exercise
from course_lib.webgpt.browser import LocalWeb, Quote, TextBrowser, normalize_space
from course_lib.webgpt.episode import check_support, content_words

_DOCS = [
    SimpleNamespace(id="json.dumps", title="json.dumps",
                    text="Serialize obj to a JSON formatted str.\n\nIf indent is a non-negative integer, then JSON "
                         "array elements and object members will be pretty-printed with that indent level.\n"
                         "If sort_keys is true, then the output of dictionaries will be sorted by key."),
    SimpleNamespace(id="topic:assert", title="The assert statement",
                    text="\n".join(f"filler line {i}" for i in range(12))
                         + "\nAssert statements insert debugging assertions.\nassert also appears here\n"
                           "ASSERT in capitals"),
]


def _web() -> LocalWeb:
    return LocalWeb.from_documents(_DOCS)


class _OnePage:
    """A search engine that always finds the one page it was made for."""

    def __init__(self, page_id):
        self.page_id = page_id

    def search(self, query, k):
        return [SimpleNamespace(doc_id=self.page_id)]


def _find_case_sensitive(lines, text):     # wrong: "Assert" does not find "assert"
    return next((i for i, line in enumerate(lines) if text in line), None)


def _find_last(lines, text):               # wrong: the last match instead of the first
    hits = [i for i, line in enumerate(lines) if text.lower() in line.lower()]
    return hits[-1] if hits else None


@exercise("11.1", answer="find_line", wrong=(_find_case_sensitive, _find_last), writes_code=True)
def check_find_line(fn) -> str:
    """Check exercise 11.1: the learner's ``find_line`` against the ``find:`` command of ``TextBrowser``."""
    web = _web()
    for page_id, queries in (("topic:assert", ["assert", "ASSERTIONS", "filler line 1", "capitals", "nowhere"]),
                             ("json.dumps", ["INDENT", "sort_keys", "json", "xml"])):
        lines = web[page_id].text.splitlines()
        for text in queries:
            browser = TextBrowser(web, _OnePage(page_id), window=4)
            browser.execute("search: anything")
            browser.execute("click: 0")
            observation = browser.execute(f"find: {text}")
            want = None if observation.startswith("Error:") else browser.view.top
            got = fn(lines, text)
            assert got == want, f"find_line(<{page_id}>, {text!r}) = {got!r}, the browser's find goes to {want!r}"
    return "find 和浏览器的一样：不分大小写，跳到第一处匹配，找不到返回 None（浏览器把它变成 Error 观察）。"


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


def _strict_reference(answer, quotes, web) -> bool:
    if not answer or not quotes:
        return False
    if not all(q.page_id in web.pages and normalize_space(q.text) in normalize_space(web[q.page_id].text)
               for q in quotes):
        return False
    quoted = set(content_words(" ".join(q.text for q in quotes)))
    for sentence in _sentences(answer):
        words = content_words(sentence)
        if words and sum(w in quoted for w in words) / len(words) < 0.5:
            return False
    return True


def _strict_whole_answer(answer, quotes, web):   # wrong: the library's check, over the whole answer at once
    return check_support(answer, quotes, web)["supported"]


def _strict_no_existence(answer, quotes, web):   # wrong: trusts that every quote is on its page
    if not answer or not quotes:
        return False
    quoted = set(content_words(" ".join(q.text for q in quotes)))
    return all(not content_words(s) or sum(w in quoted for w in content_words(s)) / len(content_words(s)) >= 0.5
               for s in _sentences(answer))


_GOOD = Quote("json.dumps", "Serialize obj to a JSON formatted str.")
_INDENT = Quote("json.dumps", "pretty-printed with that indent level.")
_SUPPORT_CASES = [
    ("json.dumps serializes obj to a JSON formatted str.", [_GOOD]),
    ("Serialize obj to a JSON formatted str. It also compresses the output with gzip.", [_GOOD]),
    ("Serialize obj to a JSON formatted str. Pretty-printed with the indent level!", [_GOOD, _INDENT]),
    ("Serialize obj to a JSON formatted str", [Quote("topic:assert", "Serialize obj to a JSON formatted str.")]),
    ("Serialize obj to a JSON formatted str.", []),
    ("", [_GOOD]),
    ("Sort keys with sort_keys. Also pretty-printed with indent.", [_INDENT]),
]


@exercise("11.2", answer="strict_support", wrong=(_strict_whole_answer, _strict_no_existence), writes_code=True)
def check_strict_support(fn) -> str:
    """Check exercise 11.2: the learner's sentence-by-sentence support check against a strict reference."""
    web = _web()
    for answer, quotes in _SUPPORT_CASES:
        got, want = fn(answer, quotes, web), _strict_reference(answer, quotes, web)
        assert isinstance(got, bool), f"strict_support must return a bool, got {type(got).__name__}"
        assert got == want, (f"answer {answer!r} with quotes {[q.text for q in quotes]}: got {got}, expected {want} "
                             "(every sentence ≥ half covered, every quote on its page, at least one quote)")
    return "逐句检查：整段答案里混进一句没有引用支撑的话，也判为不被支持。"


def _reward(answer, quotes, web) -> float:
    report = check_support(answer, quotes, web)
    return report["coverage"] if quotes and report["quotes_exist"] else 0.0


def _best_longest(candidates, web):        # wrong: the longest answer, whatever its quotes
    return max(range(len(candidates)), key=lambda i: len(candidates[i][0]))


def _best_ignores_forgery(candidates, web):   # wrong: coverage even when a quote is not on its page
    scores = [check_support(a, q, web)["coverage"] for a, q in candidates]
    return scores.index(max(scores))


def _best_first(candidates, web):          # wrong: no selection at all
    return 0


@exercise("11.3", answer="best_of_n", wrong=(_best_longest, _best_ignores_forgery, _best_first), writes_code=True)
def check_best_of_n(fn) -> str:
    """Check exercise 11.3: the learner's best-of-n pick (WebGPT's rejection sampling) against the argmax of the quote-coverage reward."""
    web = _web()
    forged = Quote("topic:assert", "Serialize obj to a JSON formatted str.")
    rounds = [
        [("I am not sure, it might be pickle or marshal or something else entirely.", [_GOOD]),
         ("Serialize obj to a JSON formatted str with json.dumps.", [forged]),
         ("json.dumps serializes obj to a JSON formatted str.", [_GOOD])],
        [("Pretty-printed with that indent level.", [_INDENT]),
         ("Pretty-printed with that indent level, the same answer again.", [_INDENT]),
         ("No quotes at all.", [])],
        [("Serialize obj to a JSON formatted str.", []),
         ("The indent level decides how JSON is pretty-printed by dumps.", [_INDENT])],
    ]
    for candidates in rounds:
        rewards = [_reward(a, q, web) for a, q in candidates]
        want = rewards.index(max(rewards))
        got = fn(candidates, web)
        assert got == want, f"picked candidate {got!r}, rewards {[round(r, 2) for r in rewards]} -> expected {want}"
    return "best-of-n：采样 n 个回答，用奖励打分取最好的；WebGPT 用训练出的奖励模型，我们用可复查的引用覆盖率。"
