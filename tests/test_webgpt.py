"""WebGPT's text browser and loop, driven by scripted replies; support checking on known cases."""

import re
from types import SimpleNamespace

import pytest

from course_lib.chat import ChatReply, ScriptedChatModel
from course_lib.webgpt.browser import LocalWeb, Quote, TextBrowser, python_topic_links
from course_lib.webgpt.episode import check_support, evaluate, parse_command, run_episode, state_prompt

DOCS = [
    SimpleNamespace(id="json", title="json", text="JSON encoder and decoder.\nSee json.dumps and json.loads."),
    SimpleNamespace(id="json.dumps", title="json.dumps",
                    text="Serialize obj to a JSON formatted str.\n\nIf indent is a non-negative integer, then JSON "
                         "array elements and object members will be pretty-printed with that indent level."),
    SimpleNamespace(id="json.loads", title="json.loads", text="Deserialize s to a Python object."),
    SimpleNamespace(id="topic:assert", title="The assert statement",
                    text="\n".join(f"line {i}" for i in range(30)) + "\nAssert statements insert debugging assertions."),
]


class WordSearch:
    """A stand-in search engine: pages ranked by how many query words they contain."""

    def search(self, query, k):
        words = query.lower().split()
        scored = sorted(((sum(w in d.text.lower() for w in words), d.id) for d in DOCS), reverse=True)
        return [SimpleNamespace(id=f"{i}#0", doc_id=i, score=s) for s, i in scored if s > 0][:k]


@pytest.fixture
def browser():
    return TextBrowser(LocalWeb.from_documents(DOCS), WordSearch(), window=10)


def test_web_links_parents_children_and_mentions():
    web = LocalWeb.from_documents(DOCS)
    assert web["json"].links == ("json.dumps", "json.loads")
    assert web["json.dumps"].links == ("json",)


def test_python_docs_web_links_related_topics():
    links = python_topic_links()
    assert "topic:string-methods" in links["topic:strings"]
    assert "topic:typesseq" in links["topic:strings"]


def test_browser_commands(browser):
    results = browser.execute("search: indent pretty printed")
    assert results.splitlines()[1].startswith("[0] json.dumps")
    page = browser.execute("click: 0")
    assert "== json.dumps (lines 1-3 of 3) ==" in page and "Links: [0] json" in page
    assert browser.execute("quote: pretty-printed with that indent level.").startswith("Quote 1 saved")
    assert browser.quotes == [Quote("json.dumps", "pretty-printed with that indent level.")]
    assert browser.execute("quote: pretty printed with indent").startswith("Error: that text is not on this page")
    assert browser.execute("back").startswith("== search: indent pretty printed")
    browser.execute("search: assert")
    browser.execute("click: 0")
    assert "(lines 11-20 of 31)" in browser.execute("scroll: down")
    assert "(lines 31-31 of 31)" in browser.execute("find: debugging")
    assert browser.execute("answer: use indent").startswith("Answer recorded") and browser.answer_text == "use indent"


@pytest.mark.parametrize("line, message", [("fly: away", "unknown command 'fly'"), ("click: x", "needs a link number"),
                                           ("click: 7", r"no link \[7\]"), ("back", "nothing to go back"),
                                           ("quote: anything", "needs an open page"), ("search:", "non-empty query")])
def test_bad_commands_become_observations(browser, line, message):
    observation = browser.execute(line)
    assert observation.startswith("Error:") and re.search(message, observation)


def test_episode_follows_the_transcript_and_records_quotes(browser):
    model = ScriptedChatModel(["search: indent pretty", "Let me look.\nclick: 0",
                               "quote: pretty-printed with that indent level.", "answer: pass indent"])
    episode = run_episode(model, browser, "How do I pretty-print JSON?", max_steps=8)
    assert [s.command for s in episode.steps] == ["search: indent pretty", "click: 0",
                                                  "quote: pretty-printed with that indent level.", "answer: pass indent"]
    assert episode.answer == "pass indent" and episode.stopped == "answer"
    last_prompt = model.requests[-1]["messages"][1]["content"]
    assert "Quotes:\n[1] pretty-printed with that indent level." in last_prompt and "Actions left: 5" in last_prompt


def test_episode_stops_at_the_step_cap_and_the_budget(browser):
    episode = run_episode(ScriptedChatModel(["I think so."] * 3), browser, "q?", max_steps=3)
    assert episode.stopped == "step cap" and episode.answer is None
    assert all(s.observation.startswith("Error: reply with one command") for s in episode.steps)
    expensive = ChatReply("search: json", usage={"total_tokens": 400})
    episode = run_episode(ScriptedChatModel([expensive] * 5), browser, "q?", token_budget=1000)
    assert episode.stopped == "token budget" and len(episode.steps) == 3


def test_state_prompt_and_parse_command(browser):
    assert parse_command("Thought: look it up\nsearch: json") == "search: json"
    assert parse_command("no command here") is None
    assert state_prompt("q?", browser, [], 4).endswith("Actions left: 4\nNext command:")


def test_support_check():
    web = LocalWeb.from_documents(DOCS)
    good = [Quote("json.dumps", "pretty-printed with that indent level")]
    assert check_support("Pretty-printed with an indent level", good, web)["supported"]
    assert check_support("indent", good, web)["coverage"] == 1.0
    unsupported = check_support("Use the sort_keys flag", good, web)
    assert unsupported["coverage"] == 0.0 and not unsupported["supported"]
    forged = check_support("indent level", [Quote("json.loads", "indent level")], web)
    assert not forged["quotes_exist"] and not forged["supported"]
    assert not check_support("indent", [], web)["supported"]
    with pytest.raises(ValueError, match="threshold"):
        check_support("x", good, web, threshold=0)


def test_evaluate_rates(browser):
    web = browser.web
    episodes = [run_episode(ScriptedChatModel(["search: indent", "click: 0",
                                               "quote: pretty-printed with that indent level.",
                                               "answer: pretty-printed indent level"]), browser, "q1?"),
                run_episode(ScriptedChatModel(["answer: no idea"]), TextBrowser(web, WordSearch()), "q2?")]
    report = evaluate(episodes, web, gold_pages=[["json.dumps"], ["json.loads"]])
    assert report == {"answered": 1.0, "quotes_exist": 0.5, "supported": 0.5, "mean_steps": 2.5,
                      "quoted_gold_page": 0.5}
    with pytest.raises(ValueError, match="one gold page list per episode"):
        evaluate(episodes, web, gold_pages=[["json"]])
    with pytest.raises(ValueError, match="at least one episode"):
        evaluate([], web)


def test_bad_web_input():
    with pytest.raises(ValueError, match="at least one page"):
        LocalWeb({})
    with pytest.raises(ValueError, match="unique"):
        LocalWeb.from_documents([DOCS[0], DOCS[0]])
    with pytest.raises(ValueError, match="has no text"):
        LocalWeb.from_documents([SimpleNamespace(id="x", text="  ")])
    with pytest.raises(ValueError, match="non-empty string"):
        run_episode(ScriptedChatModel([]), TextBrowser(LocalWeb.from_documents(DOCS), WordSearch()), " ")


def test_default_cap_leaves_room_for_search_click_quote_answer_and_two_mistakes(browser):
    """The chapter used to stop at 3 steps, one fewer than a supported answer needs (issue #27)."""
    import inspect

    assert inspect.signature(run_episode).parameters["max_steps"].default >= 6
    script = ["search: indent", "click: 9", "click: 0", "quote: Serialize obj", "quote: no such text",
              "answer: Serialize obj"]
    episode = run_episode(ScriptedChatModel(script), browser, "How do I serialize to JSON?")
    assert episode.stopped == "answer" and len(episode.steps) == 6
    assert check_support(episode.answer, episode.quotes, LocalWeb.from_documents(DOCS))["supported"]
