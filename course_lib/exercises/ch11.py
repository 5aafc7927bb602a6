"""Exercises of chapter 11 (WebGPT: a text browser, quoted answers, support checks)."""

from __future__ import annotations

import re
from types import SimpleNamespace

from course_lib.exercises import exercise
from course_lib.webgpt.browser import LocalWeb, Quote, TextBrowser, normalize_space
from course_lib.webgpt.episode import BrowseStep, Episode, check_support, content_words, support_score

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


def _tight_reference(browser) -> dict:
    spec = dict(browser.allowed())
    view = browser.view
    if view is None or view.page is None:
        return spec
    spec["scroll"] = ([] if view.top == 0 else ["up"]) + (["down"] if view.top + browser.window < len(view.lines) else [])
    if view.top > 0:
        spec["top"] = ()
    return spec


def _tight_always_top(browser):            # wrong: offers top on a page that is not scrolled
    spec = _tight_reference(browser)
    if browser.view is not None and browser.view.page is not None:
        spec["top"] = ()
    return spec


def _tight_keeps_scroll(browser):          # wrong: adds top but still offers both scroll directions
    spec = _tight_reference(browser)
    if "scroll" in spec and browser.view.page is not None:
        spec["scroll"] = ["down", "up"]
    return spec


def _scrolled_browsers():
    web = _web()
    states = {"nothing open": [], "result page": ["search: x"], "top of a long page": ["search: x", "click: 0"],
              "scrolled once": ["search: x", "click: 0", "scroll: down"],
              "bottom": ["search: x", "click: 0", "scroll: down", "scroll: down", "scroll: down", "scroll: down"],
              "short page": []}
    out = {}
    for name, script in states.items():
        browser = TextBrowser(web, _OnePage("json.dumps" if name == "short page" else "topic:assert"), window=4)
        for line in script or (["search: x", "click: 0"] if name == "short page" else []):
            browser.execute(line)
        out[name] = browser
    return out


@exercise("11.1", answer="tight_commands", wrong=(_tight_always_top, _tight_keeps_scroll), writes_code=True)
def check_tight_commands(fn) -> str:
    """Check exercise 11.1: the learner's spec with a ``top`` command and scroll directions that can move."""
    from course_lib.constrained.grammar import Automaton
    from course_lib.constrained.webgpt_commands import command_matcher

    for name, browser in _scrolled_browsers().items():
        got, want = fn(browser), _tight_reference(browser)
        assert isinstance(got, dict), f"tight_commands 应返回命令表 (dict)，得到 {type(got).__name__}"
        automaton = Automaton(command_matcher(got))
        for line in ["top", "scroll: up", "scroll: down", "back", "search: json"]:
            name_, _, arg = line.partition(": ")
            allowed = name_ in want and (want[name_] in (None, ()) or arg in want[name_])
            assert automaton.matches(line) == allowed, (
                f"状态「{name}」：语法{'应该' if allowed else '不应该'}接受 {line!r}"
                f"（页面第 {browser.view.top if browser.view else '-'} 行起，共 "
                f"{len(browser.view.lines) if browser.view else 0} 行，每屏 {browser.window} 行）")
    return "语法只接受此刻真能执行的命令：top 只在翻过页之后出现，scroll 只朝还能移动的方向。"


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
        assert isinstance(got, bool), f"strict_support 应返回 bool，得到 {type(got).__name__}"
        assert got == want, (f"答案 {answer!r}、引用 {[q.text for q in quotes]}：得到 {got}，应为 {want}"
                             "（每一句至少一半实词被引用覆盖、每条引用都在它的页面上、至少一条引用）")
    return "逐句检查：整段答案里混进一句没有引用支撑的话，也判为不被支持。"


def _pick_reference(episodes, web, penalty=0.05) -> int:
    rewards = [support_score(e, web) - penalty * len(e.steps) if e.answer else -1.0 for e in episodes]
    return rewards.index(max(rewards))


def _pick_no_penalty(episodes, web):        # wrong: the library's support score alone, steps ignored
    scores = [support_score(e, web) for e in episodes]
    return scores.index(max(scores))


def _pick_fewest_steps(episodes, web):      # wrong: the shortest episode, support ignored
    return min(range(len(episodes)), key=lambda i: len(episodes[i].steps))


def _episode(answer, quotes, steps):
    return Episode("q?", answer, quotes, [BrowseStep("search: x", "", 0, 0.0)] * steps)


@exercise("11.3", answer="pick_best", wrong=(_pick_no_penalty, _pick_fewest_steps), writes_code=True)
def check_pick_best(fn) -> str:
    """Check exercise 11.3: best-of-n whose reward also charges 0.05 per browsing step."""
    web = _web()
    forged = Quote("topic:assert", "Serialize obj to a JSON formatted str.")
    rounds = [
        [_episode("Serialize obj to a JSON formatted str.", [_GOOD], 9),
         _episode("Serialize obj to a JSON formatted str.", [_GOOD], 4),
         _episode("JSON formatted str.", [forged], 2)],
        [_episode(None, [], 1), _episode("pickle, probably.", [_GOOD], 3),
         _episode("Pretty-printed with that indent level.", [_INDENT], 6)],
        [_episode("json.dumps serializes obj to a JSON formatted str.", [_GOOD], 5),
         _episode("Serialize obj to a JSON formatted str.", [_GOOD], 5)],
        [_episode(None, [], 2), _episode(None, [], 3)],
    ]
    for k, episodes in enumerate(rounds):
        got, want = fn(episodes, web), _pick_reference(episodes, web)
        assert got == want, (f"第 {k + 1} 组：选了第 {got} 个，应为第 {want} 个（奖励 = support_score − 0.05 × 步数，"
                             "没有答案的回合最低，并列取最前）")
    return "best-of-n 的奖励可以加上代价：同样被引用支撑的答案，步数少的更好。"
